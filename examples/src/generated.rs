//! Sections of the docs that a command writes: the text between a begin
//! and an end marker is replaced, the rest of the file kept, so that
//! figures are never typed in by hand.

use std::path::Path;

/// Replaces what lies between `begin` and `end` in the file at `path` with
/// `section`, keeping both markers.
///
/// # Errors
///
/// When the file cannot be read or written, or lacks either marker.
pub fn write_between(path: &Path, begin: &str, end: &str, section: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let (Some(from), Some(to)) = (text.find(begin), text.find(end)) else {
        return Err(std::io::Error::other(format!(
            "{} lacks the markers `{begin}` and `{end}`",
            path.display()
        )));
    };
    let updated = format!("{}{begin}\n{section}{}", &text[..from], &text[to..]);
    std::fs::write(path, updated)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_the_text_between_the_markers_changes() {
        let path = std::env::temp_dir().join(format!("generated-{}.md", std::process::id()));
        std::fs::write(&path, "intro\n<!-- b -->\nold figures\n<!-- e -->\noutro\n").unwrap();
        write_between(&path, "<!-- b -->", "<!-- e -->", "new figures\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "intro\n<!-- b -->\nnew figures\n<!-- e -->\noutro\n");
        assert!(write_between(&path, "<!-- x -->", "<!-- e -->", "").is_err());
        let _ = std::fs::remove_file(&path);
    }
}
