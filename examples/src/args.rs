//! `--name value` flags with an environment-variable fallback, so every
//! example can be configured either way without a CLI framework.

use std::str::FromStr;

/// The command line, parsed into flags and positional arguments.
#[derive(Debug, Clone, Default)]
pub struct Args {
    flags: Vec<(String, String)>,
    positional: Vec<String>,
}

impl Args {
    /// Parses `std::env::args()` (after the program name).
    pub fn from_env() -> Self {
        Self::parse(std::env::args().skip(1))
    }

    /// Parses `--name value`, `--name=value` and bare `--name` (as "true").
    pub fn parse(args: impl IntoIterator<Item = String>) -> Self {
        let mut parsed = Self::default();
        let mut args = args.into_iter().peekable();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.strip_prefix("--") else {
                parsed.positional.push(arg);
                continue;
            };
            if let Some((name, value)) = flag.split_once('=') {
                parsed.flags.push((name.to_owned(), value.to_owned()));
            } else if args.peek().is_some_and(|next| !next.starts_with("--")) {
                let value = args.next().unwrap_or_default();
                parsed.flags.push((flag.to_owned(), value));
            } else {
                parsed.flags.push((flag.to_owned(), "true".to_owned()));
            }
        }
        parsed
    }

    /// The flag's value, else the environment variable `env`'s.
    pub fn get(&self, name: &str, env: &str) -> Option<String> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
    }

    /// The flag parsed as `T`, else `default`; exits with a message when the
    /// value does not parse.
    pub fn value<T: FromStr>(&self, name: &str, env: &str, default: T) -> T {
        match self.get(name, env) {
            None => default,
            Some(text) => text.parse().unwrap_or_else(|_| {
                eprintln!("error: --{name} (or {env}) has an invalid value: {text}");
                std::process::exit(2)
            }),
        }
    }

    /// Whether a bare `--name` flag was given.
    pub fn is_set(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, v)| n == name && v != "false")
    }

    /// The positional arguments.
    pub fn positional(&self) -> &[String] {
        &self.positional
    }
}

/// Parses a comma-separated list such as `1,8,64`.
pub fn list<T: FromStr>(text: &str) -> Option<Vec<T>> {
    text.split(',')
        .map(|part| part.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_values_and_positionals() {
        let args = Args::parse(
            [
                "a.jpg",
                "--partitions",
                "2",
                "--top=3",
                "b.jpg",
                "--verbose",
            ]
            .map(String::from),
        );
        assert_eq!(args.value("partitions", "NO_SUCH_VAR", 1usize), 2);
        assert_eq!(args.value("top", "NO_SUCH_VAR", 5usize), 3);
        assert!(args.is_set("verbose"));
        assert_eq!(args.positional(), ["a.jpg", "b.jpg"]);
        assert_eq!(list::<u32>("1, 8,64"), Some(vec![1, 8, 64]));
        assert_eq!(list::<u32>("1,x"), None);
    }
}
