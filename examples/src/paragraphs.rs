//! Markdown cut into the paragraphs a reader would quote: prose paragraphs
//! and list items, without code blocks, tables, headings or markup, each
//! with the file it came from. The demo's index searches them.

/// One paragraph and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paragraph {
    /// The file (as given) it came from.
    pub source: String,
    /// Its text on one line, with links reduced to their words and
    /// emphasis and code marks removed.
    pub text: String,
}

/// Paragraphs shorter than this many words (captions, "See also" lines)
/// say too little to be an answer.
const MIN_WORDS: usize = 8;

/// The paragraphs of `markdown`, in order.
pub fn paragraphs(source: &str, markdown: &str) -> Vec<Paragraph> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut in_code = false;
    let mut flush = |current: &mut Vec<&str>| {
        let text = plain(&current.join(" "));
        if text.split_whitespace().count() >= MIN_WORDS {
            out.push(Paragraph {
                source: source.to_owned(),
                text,
            });
        }
        current.clear();
    };
    for line in markdown.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_code = !in_code;
            flush(&mut current);
            continue;
        }
        let skipped = in_code
            || trimmed.is_empty()
            || trimmed.starts_with('#')
            || trimmed.starts_with('|')
            || trimmed.starts_with("<!--")
            || trimmed.starts_with("![");
        if skipped {
            flush(&mut current);
            continue;
        }
        let item = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "))
            .or_else(|| numbered(trimmed));
        if let Some(item) = item {
            flush(&mut current);
            current.push(item);
        } else {
            current.push(trimmed);
        }
    }
    flush(&mut current);
    out
}

/// The text of a numbered list item ("3. text"), if the line is one.
fn numbered(line: &str) -> Option<&str> {
    let (number, rest) = line.split_once(". ")?;
    (!number.is_empty() && number.chars().all(|c| c.is_ascii_digit())).then_some(rest)
}

/// Markdown inline markup removed: `[words](link)` becomes `words`, and
/// backticks and emphasis stars go.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .split_once("](")
            .and_then(|(words, tail)| Some((words, tail.split_once(')')?.1)))
        {
            Some((words, tail)) if !words.contains('[') => {
                out.push_str(words);
                rest = tail;
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace(['`', '*'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_and_list_items_are_kept_and_code_tables_and_headings_are_not() {
        let markdown = "# Title\n\nA first paragraph that runs\nover two lines with a [link](x.md) and `code`.\n\n\
            ```rust\nlet this = \"is code and never a paragraph of prose\";\n```\n\n\
            | a table | row that is long enough to count as words |\n\n\
            - a list item that says enough words to be kept here\n- short item\n\
            2. a numbered item that also says enough words to be kept\n";
        let texts: Vec<String> = paragraphs("x.md", markdown)
            .into_iter()
            .map(|p| p.text)
            .collect();
        assert_eq!(
            texts,
            [
                "A first paragraph that runs over two lines with a link and code.",
                "a list item that says enough words to be kept here",
                "a numbered item that also says enough words to be kept",
            ]
        );
    }
}
