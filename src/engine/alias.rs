//! The aliases the engine gives LiteLLM keys: written and read only here.
//!
//! - An issued key: `<key_alias_prefix>-<role>-<12 lowercase hex digits>`. The 48 random bits
//!   make it unique, because LiteLLM does not enforce alias uniqueness under concurrency while
//!   rollback deletes by alias and tidy recognises the mount's keys by it.
//! - A `rotate-root` successor, while the old key still holds its alias:
//!   `<old alias>-rotating-<8 hex digits>`, or `vault-rotate-root-<8 hex digits>` when the old
//!   key had none. The successor takes the old alias once the old key is deleted.
//! - A static role's key: `<key_alias_prefix>-<name>` unless the role names it (`key_alias`);
//!   its successor during a rotation has the temporary alias of a `rotate-root` successor, and
//!   the key it replaces, during its grace period, `<stable alias>-previous-<8 hex digits>`.
//! - The team a role owns: `vault-<role>-<12 lowercase hex digits>`, new for every incarnation
//!   of the role, because LiteLLM keeps a deleted team's spend in memory under its id.

/// Hex digits of randomness in an issued key's alias.
const ISSUED_RANDOM_LEN: usize = 12;

/// Marks the temporary alias of a successor.
const ROTATING_INFIX: &str = "-rotating-";

/// Hex digits of randomness in a successor's temporary alias.
const ROTATING_RANDOM_LEN: usize = 8;

/// Alias prefix for the successor of a key that had no alias.
const UNALIASED_SUCCESSOR_PREFIX: &str = "vault-rotate-root";

/// `<prefix>-<role>`: what every alias of a role's keys starts with.
pub fn stem(prefix: &str, role: &str) -> String {
    format!("{prefix}-{role}")
}

/// A fresh alias for a key issued under `role`.
pub fn issued(prefix: &str, role: &str) -> String {
    format!("{}-{}", stem(prefix, role), random_hex(ISSUED_RANDOM_LEN))
}

/// The stem (`<prefix>-<role>`) of an alias [`issued`] made, `None` for any other alias.
pub fn issued_stem(alias: &str) -> Option<&str> {
    let (stem, random) = alias.rsplit_once('-')?;
    is_lower_hex(random, ISSUED_RANDOM_LEN).then_some(stem)
}

/// A fresh team id for role `role`.
pub fn team(role: &str) -> String {
    format!("vault-{role}-{}", random_hex(ISSUED_RANDOM_LEN))
}

/// A temporary alias for the successor of a key with `old` alias.
pub fn rotating(old: Option<&str>) -> String {
    let random = random_hex(ROTATING_RANDOM_LEN);
    match old {
        Some(alias) => format!("{}{ROTATING_INFIX}{random}", base(alias)),
        None => format!("{UNALIASED_SUCCESSOR_PREFIX}-{random}"),
    }
}

/// Marks the alias of a static role's key in its grace period.
const PREVIOUS_INFIX: &str = "-previous-";

/// The alias a static role's key has for its grace period, once its successor holds `stable`.
pub fn previous(stable: &str) -> String {
    format!(
        "{stable}{PREVIOUS_INFIX}{}",
        random_hex(ROTATING_RANDOM_LEN)
    )
}

/// The alias a key had before rotations added suffixes to it: `x-rotating-0123abcd` → `x`.
/// A suffix survives only when renaming a successor failed; it must not pile up.
pub fn base(alias: &str) -> &str {
    if let Some(at) = alias.rfind(ROTATING_INFIX)
        && at > 0
    {
        let suffix = &alias[at + ROTATING_INFIX.len()..];
        if suffix.len() == ROTATING_RANDOM_LEN && suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return &alias[..at];
        }
    }
    alias
}

fn random_hex(len: usize) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    random[..len].to_string()
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_aliases_are_prefixed_and_unique() {
        let a = issued("vault", "dev");
        let b = issued("vault", "dev");
        assert_ne!(a, b);
        let suffix = a.strip_prefix("vault-dev-").unwrap();
        assert_eq!(suffix.len(), 12);
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(issued_stem(&a), Some("vault-dev"));
        let (t1, t2) = (team("dev"), team("dev"));
        assert_ne!(t1, t2);
        assert!(
            t1.starts_with("vault-dev-") && t1.len() == "vault-dev-".len() + 12,
            "{t1}"
        );
    }

    #[test]
    fn only_the_issued_shape_has_a_stem() {
        assert_eq!(issued_stem("vault-dev-0123456789ab"), Some("vault-dev"));
        assert_eq!(issued_stem("team-a.b-abcdefabcdef"), Some("team-a.b"));
        assert_eq!(issued_stem("vault-dev-x-0123456789ab"), Some("vault-dev-x"));
        for other in [
            "vault-dev-0123456789a",
            "vault-dev-0123456789abc",
            "vault-dev-0123456789AB",
            "vault-dev-0123456789ag",
            "vault-dev",
            "0123456789ab",
        ] {
            assert_eq!(issued_stem(other), None, "{other}");
        }
    }

    #[test]
    fn successor_aliases_do_not_pile_up_suffixes() {
        assert_eq!(base("vault-admin"), "vault-admin");
        assert_eq!(base("vault-admin-rotating-0123abcd"), "vault-admin");
        assert_eq!(
            base("a-rotating-0123abcd-rotating-89abcdef"),
            "a-rotating-0123abcd"
        );
        // Only our exact suffix is stripped.
        assert_eq!(base("x-rotating-later"), "x-rotating-later");
        assert_eq!(base("-rotating-0123abcd"), "-rotating-0123abcd");
        assert_eq!(base("x-rotating-0123abcdef"), "x-rotating-0123abcdef");

        let temp = rotating(Some("vault-admin-rotating-0123abcd"));
        assert!(temp.starts_with("vault-admin-rotating-"), "{temp}");
        assert_eq!(base(&temp), "vault-admin");
        assert_ne!(temp, rotating(Some("vault-admin")));
        assert!(rotating(None).starts_with("vault-rotate-root-"));
    }

    #[test]
    fn a_static_keys_grace_alias_is_unique_and_never_an_issued_one() {
        let (a, b) = (previous("vault-ci"), previous("vault-ci"));
        assert_ne!(a, b);
        assert!(a.starts_with("vault-ci-previous-"), "{a}");
        assert_eq!(issued_stem(&a), None);
        assert_eq!(issued_stem(&rotating(Some("vault-ci"))), None);
    }
}
