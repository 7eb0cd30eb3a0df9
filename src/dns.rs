//! DNS names in the one form the agent compares and sends.
//!
//! Route 53 stores names lowercase and absolute (with the trailing dot), and
//! hands back every character outside `a-z 0-9 - _ .` as a three-digit octal
//! escape (`*` comes back as `\052`). A [`DnsName`] is always in that
//! normalised form with escapes decoded, so a name we wrote and the same name
//! read back compare equal and the agent never rewrites a record forever.

use std::fmt;

/// Longest name in presentation form, without the trailing dot: 255 octets on
/// the wire (RFC 1035 section 2.3.4) less the length octets.
const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035 section 2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// A validated, lowercase, absolute domain name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsName(String);

/// Why a string is not a name the agent will write.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("`{name}` is {len} characters long; DNS allows at most {MAX_NAME_LEN}")]
    TooLong { name: String, len: usize },
    #[error("`{name}` has an empty label (two dots in a row, or a leading dot)")]
    EmptyLabel { name: String },
    #[error("label `{label}` in `{name}` is longer than {MAX_LABEL_LEN} characters")]
    LabelTooLong { name: String, label: String },
    #[error(
        "`{name}` contains {found:?}; names may hold only letters, digits, `-` and `_` \
         (and `*` as the whole first label)"
    )]
    BadCharacter { name: String, found: char },
}

impl DnsName {
    /// Checks `text` against the label rules and returns it normalised.
    ///
    /// A trailing dot is optional. Letters are lowercased. `*` is accepted only
    /// as the whole leftmost label (a wildcard record).
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let lower = text.trim_end_matches('.').to_ascii_lowercase();
        if lower.is_empty() {
            return Err(NameError::Empty);
        }
        if lower.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong {
                len: lower.len(),
                name: lower,
            });
        }
        for (index, label) in lower.split('.').enumerate() {
            check_name_label(&lower, label, index == 0)?;
        }
        Ok(DnsName(format!("{lower}.")))
    }

    /// Reads a name as Route 53 returns it: decodes `\ooo` octal escapes,
    /// lowercases and makes it absolute. No label rules are applied, since the
    /// live zone may hold names the agent would never write.
    pub fn from_route53(text: &str) -> Self {
        let decoded = decode_octal_escapes(text).to_ascii_lowercase();
        if decoded.ends_with('.') {
            DnsName(decoded)
        } else {
            DnsName(format!("{decoded}."))
        }
    }

    /// The absolute name, with its trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This name with `labels` (dot-separated, each checked) put before it.
    /// The labels may hold `_`; this name's own labels are kept as they are,
    /// so a wildcard's `*` may end up inside the new name, where Route 53
    /// stores it as a plain character.
    pub fn prefixed(&self, labels: &str) -> Result<DnsName, NameError> {
        let labels = labels.to_ascii_lowercase();
        for label in labels.split('.') {
            check_name_label(&labels, label, false)?;
        }
        let name = format!("{labels}.{}", self.0);
        let len = name.len() - 1;
        if len > MAX_NAME_LEN {
            return Err(NameError::TooLong { name, len });
        }
        Ok(DnsName(name))
    }

    /// The name below `suffix` with `suffix` removed, if this name lies
    /// strictly below it: `a.b.example.com.` less `example.com.` is `a.b`.
    pub fn strip_suffix(&self, suffix: &DnsName) -> Option<&str> {
        self.0.strip_suffix(&format!(".{}", suffix.0))
    }

    /// The name that this name stands for after `labels` and a dot are
    /// removed from its front.
    pub fn without_prefix(&self, labels: &str) -> Option<DnsName> {
        self.0
            .strip_prefix(labels)
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|rest| !rest.is_empty())
            .map(|rest| DnsName(rest.to_string()))
    }

    /// The first label.
    pub fn first_label(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }

    /// The reverse-lookup name of an IPv4 address: `10.0.0.7` is
    /// `7.0.0.10.in-addr.arpa.`.
    pub fn reverse_of(ip: std::net::Ipv4Addr) -> DnsName {
        let [a, b, c, d] = ip.octets();
        DnsName(format!("{d}.{c}.{b}.{a}.in-addr.arpa."))
    }

    /// True when this name is `zone` itself or lies below it.
    pub fn is_within(&self, zone: &DnsName) -> bool {
        self == zone || self.0.ends_with(&format!(".{}", zone.0))
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_name_label(name: &str, label: &str, leftmost: bool) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel { name: name.into() });
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong {
            name: name.into(),
            label: label.into(),
        });
    }
    if leftmost && label == "*" {
        return Ok(());
    }
    match label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        Some(found) => Err(NameError::BadCharacter {
            name: name.into(),
            found,
        }),
        None => Ok(()),
    }
}

/// Why a value cannot stand as one hostname label.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than {MAX_LABEL_LEN} characters")]
    TooLong,
    #[error("it contains {0:?}; a label may hold only letters, digits and `-`")]
    BadCharacter(char),
    #[error("it starts or ends with `-`")]
    EdgeHyphen,
}

/// Checks that `value` can stand as one hostname label (RFC 1123: letters,
/// digits and inner hyphens). Used for values substituted into templates,
/// such as tag values, which must not add dots or odd characters to a name.
pub fn check_hostname_label(value: &str) -> Result<(), LabelError> {
    if value.is_empty() {
        return Err(LabelError::Empty);
    }
    if value.len() > MAX_LABEL_LEN {
        return Err(LabelError::TooLong);
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(LabelError::BadCharacter(bad));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(LabelError::EdgeHyphen);
    }
    Ok(())
}

/// Turns Route 53's `\ooo` escapes back into the characters they stand for.
/// A backslash not followed by three octal digits is kept as it is.
fn decode_octal_escapes(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match escape {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                // Three octal digits reach 511; only byte values are escapes.
                match u8::try_from(value) {
                    Ok(byte) => out.push(byte),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 4]),
                }
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lowercases_and_makes_absolute() {
        let name = DnsName::parse("Web-1.Internal.Example.COM").unwrap();
        assert_eq!(name.as_str(), "web-1.internal.example.com.");
        assert_eq!(
            DnsName::parse("a.example.com.").unwrap().as_str(),
            "a.example.com."
        );
    }

    #[test]
    fn parse_rejects_bad_names() {
        assert_eq!(DnsName::parse(""), Err(NameError::Empty));
        assert_eq!(DnsName::parse("."), Err(NameError::Empty));
        assert!(matches!(
            DnsName::parse("a..b"),
            Err(NameError::EmptyLabel { .. })
        ));
        assert!(matches!(
            DnsName::parse(".a.b"),
            Err(NameError::EmptyLabel { .. })
        ));
        assert!(matches!(
            DnsName::parse("web 1.example.com"),
            Err(NameError::BadCharacter { found: ' ', .. })
        ));
        let long_label = "a".repeat(64);
        assert!(matches!(
            DnsName::parse(&format!("{long_label}.example.com")),
            Err(NameError::LabelTooLong { .. })
        ));
        let long_name = vec!["abcdefghi"; 26].join(".");
        assert!(matches!(
            DnsName::parse(&long_name),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn wildcard_only_as_whole_first_label() {
        assert_eq!(
            DnsName::parse("*.example.com").unwrap().as_str(),
            "*.example.com."
        );
        assert!(DnsName::parse("a.*.example.com").is_err());
        assert!(DnsName::parse("a*.example.com").is_err());
    }

    #[test]
    fn route53_escapes_are_decoded() {
        let live = DnsName::from_route53("\\052.Example.com.");
        assert_eq!(live, DnsName::parse("*.example.com").unwrap());
        assert_eq!(DnsName::from_route53("a\\b.com").as_str(), "a\\b.com.");
        assert_eq!(DnsName::from_route53("x\\777.com").as_str(), "x\\777.com.");
    }

    #[test]
    fn within_zone_needs_a_label_boundary() {
        let zone = DnsName::parse("example.com").unwrap();
        assert!(DnsName::parse("a.example.com").unwrap().is_within(&zone));
        assert!(DnsName::parse("example.com").unwrap().is_within(&zone));
        assert!(!DnsName::parse("badexample.com").unwrap().is_within(&zone));
        assert!(!DnsName::parse("example.org").unwrap().is_within(&zone));
    }

    #[test]
    fn prefixes_and_reverse_names() {
        let name = DnsName::parse("*.web.example.com").unwrap();
        let marker = name.prefixed("_route53-agent.a").unwrap();
        assert_eq!(marker.as_str(), "_route53-agent.a.*.web.example.com.");
        assert_eq!(
            marker.without_prefix("_route53-agent"),
            Some(name.prefixed("a").unwrap())
        );
        assert_eq!(marker.first_label(), "_route53-agent");
        assert!(name.prefixed("bad label").is_err());
        let long = DnsName::parse(&vec!["abcdefghi"; 25].join(".")).unwrap();
        assert!(matches!(
            long.prefixed("_route53-agent.a"),
            Err(NameError::TooLong { .. })
        ));
        let zone = DnsName::parse("example.com").unwrap();
        assert_eq!(name.strip_suffix(&zone), Some("*.web"));
        assert_eq!(zone.strip_suffix(&zone), None);
        let reverse = DnsName::reverse_of(std::net::Ipv4Addr::new(10, 0, 0, 7));
        assert_eq!(reverse.as_str(), "7.0.0.10.in-addr.arpa.");
    }

    #[test]
    fn hostname_labels() {
        assert_eq!(check_hostname_label("web-1"), Ok(()));
        assert_eq!(check_hostname_label("Web1"), Ok(()));
        assert_eq!(check_hostname_label(""), Err(LabelError::Empty));
        assert_eq!(
            check_hostname_label("web.1"),
            Err(LabelError::BadCharacter('.'))
        );
        assert_eq!(
            check_hostname_label("web_1"),
            Err(LabelError::BadCharacter('_'))
        );
        assert_eq!(check_hostname_label("-web"), Err(LabelError::EdgeHyphen));
        assert_eq!(
            check_hostname_label(&"a".repeat(64)),
            Err(LabelError::TooLong)
        );
    }
}
