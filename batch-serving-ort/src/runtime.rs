//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! `ort` is built with `load-dynamic`, so nothing is linked at build time; the
//! library is opened here with `ort::init_from`, which reports a typed error
//! instead of panicking as the implicit loader does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::OrtError;

/// The library file name of the ONNX Runtime release this crate targets.
pub const LIBRARY_NAME: &str = "libonnxruntime.so.1.31.1";

/// The environment variable that names the library explicitly.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// Where the loaded library came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LibrarySource {
    /// The `ORT_DYLIB_PATH` environment variable.
    Environment,
    /// An installed `onnxruntime` Python package.
    PythonPackage,
    /// The copy `scripts/ort-runtime.sh` caches in `.ort/` of the
    /// workspace (found from the working directory or a parent).
    WorkspaceCache,
    /// The system's library search path.
    System,
}

/// A loaded ONNX Runtime: the process-wide environment sessions are made in.
#[derive(Debug, Clone)]
pub struct Runtime {
    environment: ort::environment::Environment,
    library: PathBuf,
    source: LibrarySource,
}

impl Runtime {
    /// Loads ONNX Runtime on first use and returns it; later calls return the
    /// same runtime. The library is looked for, in order:
    /// 1. the file named by `ORT_DYLIB_PATH`;
    /// 2. an installed `onnxruntime` 1.31 Python package
    ///    (`onnxruntime/capi/libonnxruntime.so.1.31.1`);
    /// 3. `.ort/onnxruntime-1.31.1/` in the working directory or a parent,
    ///    where the README's commands cache it;
    /// 4. the system library path.
    ///
    /// A failed attempt is not remembered, so a caller may fix the
    /// environment and try again.
    ///
    /// # Errors
    ///
    /// [`OrtError::RuntimeNotFound`] with the places searched and how to get
    /// the library, or [`OrtError::RuntimeLoad`] when a file was found but
    /// would not load.
    pub fn get() -> Result<Self, OrtError> {
        static LOADED: Mutex<Option<Runtime>> = Mutex::new(None);
        let mut loaded = LOADED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(runtime) = loaded.as_ref() {
            return Ok(runtime.clone());
        }
        let (library, source) = locate_library()?;
        let builder = ort::init_from(&library).map_err(|error| OrtError::RuntimeLoad {
            path: library.clone(),
            message: error.to_string(),
        })?;
        let environment = builder
            .with_name("batch-serving")
            .build()
            .map_err(|error| OrtError::runtime("create the environment", error))?;
        tracing::info!(library = %library.display(), ?source, "loaded onnxruntime");
        let runtime = Runtime {
            environment,
            library,
            source,
        };
        *loaded = Some(runtime.clone());
        Ok(runtime)
    }

    /// The library file that was loaded.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Where the library was found.
    pub fn source(&self) -> &LibrarySource {
        &self.source
    }

    pub(crate) fn environment(&self) -> &ort::environment::Environment {
        &self.environment
    }
}

/// Finds the library without loading it, in the order [`Runtime::get`]
/// documents.
///
/// # Errors
///
/// [`OrtError::RuntimeNotFound`] naming every place searched, or
/// [`OrtError::RuntimeLoad`] when `ORT_DYLIB_PATH` names a missing file (an
/// explicit choice is never silently replaced by another library).
pub fn locate_library() -> Result<(PathBuf, LibrarySource), OrtError> {
    if let Some(path) = std::env::var_os(DYLIB_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok((path, LibrarySource::Environment));
        }
        return Err(OrtError::RuntimeLoad {
            path,
            message: format!("{DYLIB_ENV} names a file that does not exist"),
        });
    }
    let mut searched = vec![format!("{DYLIB_ENV} (unset)")];
    match python_package_library() {
        Some(path) if path.is_file() => return Ok((path, LibrarySource::PythonPackage)),
        Some(path) => searched.push(format!("{} (not there)", path.display())),
        None => searched.push("the onnxruntime Python package (not installed)".to_owned()),
    }
    if let Some(path) = workspace_cache() {
        return Ok((path, LibrarySource::WorkspaceCache));
    }
    searched.push(".ort/ in the working directory and its parents".to_owned());
    if let Some(path) = system_library() {
        return Ok((path, LibrarySource::System));
    }
    searched.push(format!("{LIBRARY_NAME} on the system library path"));
    Err(OrtError::RuntimeNotFound {
        searched: searched.join(", "),
    })
}

/// Asks the Python interpreter where its `onnxruntime` package lives: this
/// follows virtual environments, pyenv and user installs without guessing
/// their layouts.
fn python_package_library() -> Option<PathBuf> {
    const SCRIPT: &str = "import importlib.util as u, os; s = u.find_spec('onnxruntime'); \
                          print(os.path.dirname(s.origin) if s and s.origin else '')";
    ["python3", "python"].into_iter().find_map(|python| {
        let output = Command::new(python).args(["-c", SCRIPT]).output().ok()?;
        let package = String::from_utf8(output.stdout).ok()?;
        let package = package.trim();
        (output.status.success() && !package.is_empty())
            .then(|| Path::new(package).join("capi").join(LIBRARY_NAME))
    })
}

/// The CPU build that the README's commands fetch into `.ort/`, so that
/// examples run straight after them need no `ORT_DYLIB_PATH`.
fn workspace_cache() -> Option<PathBuf> {
    cached_below(&std::env::current_dir().ok()?)
}

/// The cached library in `.ort/` of `dir` or its nearest parent that has one.
fn cached_below(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|dir| {
            dir.join(".ort")
                .join("onnxruntime-1.31.1")
                .join(LIBRARY_NAME)
        })
        .find(|path| path.is_file())
}

/// The usual system library folders; a bare name handed to the loader would
/// also search them, but a path lets errors and logs say which file it was.
fn system_library() -> Option<PathBuf> {
    let mut folders: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    folders.extend(
        [
            "/usr/local/lib",
            "/usr/lib",
            "/usr/lib64",
            "/usr/lib/x86_64-linux-gnu",
        ]
        .map(PathBuf::from),
    );
    folders
        .into_iter()
        .map(|folder| folder.join(LIBRARY_NAME))
        .find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_workspace_cache_is_found_from_a_sub_folder() {
        let root = std::env::temp_dir().join(format!("ort-cache-{}", std::process::id()));
        let library = root
            .join(".ort")
            .join("onnxruntime-1.31.1")
            .join(LIBRARY_NAME);
        let deep = root.join("examples").join("src");
        std::fs::create_dir_all(library.parent().unwrap()).unwrap();
        std::fs::create_dir_all(&deep).unwrap();
        assert_ne!(cached_below(&deep), Some(library.clone()), "no file yet");
        std::fs::write(&library, b"").unwrap();
        assert_eq!(cached_below(&deep), Some(library.clone()));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
