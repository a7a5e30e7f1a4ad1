//! Redis's glob patterns (KEYS, SCAN MATCH, CONFIG GET): `*`, `?`, `[abc]`, `[^a-z]`, `\x`.

/// Whether `text` matches `pattern`.
///
/// Backtracks only to the last `*` (the classic wildcard algorithm), so a pattern full of stars
/// costs O(pattern × text) rather than exponential time.
pub(super) fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // After the last star seen: where the pattern continues, and where in the text it was tried.
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        if pattern.get(p) == Some(&b'*') {
            p += 1;
            last_star = Some((p, t));
            continue;
        }
        if let Some(next) = token_matches(pattern, p, text[t]) {
            p = next;
            t += 1;
            continue;
        }
        match last_star {
            Some((after_star, tried)) => {
                p = after_star;
                t = tried + 1;
                last_star = Some((after_star, tried + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&byte| byte == b'*')
}

/// Whether the one-byte token at `pattern[p]` (`?`, a class, an escape, a literal) matches
/// `byte`; the index after the token if so.
fn token_matches(pattern: &[u8], p: usize, byte: u8) -> Option<usize> {
    match &pattern[p..] {
        [] => None,
        [b'?', ..] => Some(p + 1),
        [b'[', rest @ ..] => {
            let (matched, after) = class(rest, byte);
            matched.then_some(pattern.len() - after.len())
        }
        [b'\\', escaped, ..] => (*escaped == byte).then_some(p + 2),
        [literal, ..] => (*literal == byte).then_some(p + 1),
    }
}

/// Matches `byte` against the class that starts `pattern` (just after `[`); returns whether it
/// matched and the pattern after the closing `]`.
fn class(pattern: &[u8], byte: u8) -> (bool, &[u8]) {
    let (negated, mut pattern) = match pattern.split_first() {
        Some((b'^', rest)) => (true, rest),
        _ => (false, pattern),
    };
    let mut matched = false;
    loop {
        match pattern {
            [] => break,
            [b']', rest @ ..] => {
                pattern = rest;
                break;
            }
            [b'\\', escaped, rest @ ..] => {
                matched |= *escaped == byte;
                pattern = rest;
            }
            [low, b'-', high, rest @ ..] if *high != b']' => {
                let (low, high) = if low <= high {
                    (*low, *high)
                } else {
                    (*high, *low)
                };
                matched |= (low..=high).contains(&byte);
                pattern = rest;
            }
            [single, rest @ ..] => {
                matched |= *single == byte;
                pattern = rest;
            }
        }
    }
    (matched != negated, pattern)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_semantics() {
        for (pattern, text, expected) in [
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("user:*:name", "user:42:name", true),
            ("user:*:name", "user:42:age", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("", "", true),
            ("**a", "bba", true),
            ("*a*a*a*a*a*a*a*a*a*a*b", "a".repeat(200).as_str(), false),
        ] {
            assert_eq!(
                matches(pattern.as_bytes(), text.as_bytes()),
                expected,
                "{pattern} vs {text}"
            );
        }
    }
}
