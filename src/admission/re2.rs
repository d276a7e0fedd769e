//! Schema `pattern`s with the semantics the API server gives them: Go's RE2 syntax.
//!
//! The `regex` crate accepts the same syntax as RE2 (no look-arounds, no back-references, `\p{L}`
//! and friends), but its Perl classes are Unicode-aware: `\d` matches `٣`. RE2's are ASCII only,
//! so they are rewritten to their ASCII sets before compiling.

use regex::Regex;

/// Compiles an RE2 `pattern` so that it accepts exactly what the API server's RE2 accepts.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&ascii_perl_classes(pattern))
}

/// Rewrites `\d \D \w \W \s \S` to the ASCII classes RE2 gives them, inside and outside
/// bracket expressions (nested classes are valid in the `regex` crate).
fn ascii_perl_classes(pattern: &str) -> String {
    let mut translated = String::with_capacity(pattern.len());
    let mut characters = pattern.chars();
    let mut bracket_depth = 0_usize;
    while let Some(character) = characters.next() {
        if character != '\\' {
            match character {
                '[' => bracket_depth += 1,
                ']' => bracket_depth = bracket_depth.saturating_sub(1),
                _ => {}
            }
            translated.push(character);
            continue;
        }
        let Some(escaped) = characters.next() else {
            translated.push('\\');
            break;
        };
        match escaped {
            'd' => translated.push_str("[0-9]"),
            'D' => translated.push_str("[^0-9]"),
            'w' => translated.push_str("[0-9A-Za-z_]"),
            'W' => translated.push_str("[^0-9A-Za-z_]"),
            's' => translated.push_str("[\\t\\n\\f\\r ]"),
            'S' => translated.push_str("[^\\t\\n\\f\\r ]"),
            'b' if bracket_depth == 0 => translated.push_str("(?-u:\\b)"),
            'B' if bracket_depth == 0 => translated.push_str("(?-u:\\B)"),
            other => {
                translated.push('\\');
                translated.push(other);
            }
        }
    }
    translated
}

#[cfg(test)]
mod tests {
    use super::compile;

    #[test]
    fn digits_are_ascii_only_as_in_re2() {
        let region = compile(r"^[a-z]{2}(-[a-z]+)+-\d+$").unwrap();
        assert!(region.is_match("us-east-1"));
        assert!(!region.is_match("us-east-\u{0663}"));
    }

    #[test]
    fn perl_classes_inside_brackets_keep_working() {
        let key = compile(r"^[\d\-_]+$").unwrap();
        assert!(key.is_match("12-_3"));
        assert!(!key.is_match("1a"));
    }

    #[test]
    fn unicode_letter_classes_are_accepted() {
        let name = compile(r"^[\p{L}\p{Z}\p{N}_.:/=+\-%@]*$").unwrap();
        assert!(name.is_match("Données patients 2024"));
        assert!(!name.is_match("bad name!"));
    }
}
