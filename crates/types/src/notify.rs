//! Keyspace notifications: the `notify-keyspace-events` flags, as Redis
//! 7.0 reads and prints them, and the channels an event goes to.
//!
//! An event has a class (`g` generic, `$` string, `l` list, `s` set, `h`
//! hash, `z` sorted set, `x` expired, `e` evicted, `t` stream, `d`
//! module, `n` new key, `m` key miss) and a name (`set`, `lpush`, `del`,
//! ...). It is published when its class is enabled, to
//! `__keyspace@0__:<key>` (message: the name) if `K` is set and to
//! `__keyevent@0__:<name>` (message: the key) if `E` is.

/// A set of `notify-keyspace-events` flags (Redis's bit values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u32);

pub const KEYSPACE: u32 = 1 << 0;
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
pub const KEY_MISS: u32 = 1 << 11;
pub const MODULE: u32 = 1 << 12;
pub const NEW: u32 = 1 << 13;
/// `A`: every class but key misses and new keys.
pub const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The classes in the order Redis prints them, `A` aside.
const CLASSES: [(u32, char); 11] = [(GENERIC, 'g'), (STRING, '$'), (LIST, 'l'), (SET, 's'), (HASH, 'h'), (ZSET, 'z'), (EXPIRED, 'x'), (EVICTED, 'e'), (STREAM, 't'), (MODULE, 'd'), (NEW, 'n')];

impl Flags {
    /// Reads a `notify-keyspace-events` value; None for a character Redis
    /// does not know.
    pub fn parse(text: &[u8]) -> Option<Flags> {
        let mut flags = 0;
        for &c in text {
            flags |= match c {
                b'A' => ALL,
                b'K' => KEYSPACE,
                b'E' => KEYEVENT,
                b'm' => KEY_MISS,
                c => CLASSES.iter().find(|(_, name)| *name as u8 == c)?.0,
            };
        }
        Some(Flags(flags))
    }

    /// The value as CONFIG GET prints it (Redis 7.0's
    /// `keyspaceEventsFlagsToString`, which leaves `n` out when `A` is
    /// set).
    pub fn render(self) -> String {
        let mut out = String::new();
        if self.0 & ALL == ALL {
            out.push('A');
        } else {
            out.extend(CLASSES.iter().filter(|(bit, _)| self.0 & bit != 0).map(|&(_, c)| c));
        }
        for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
            if self.0 & bit != 0 {
                out.push(c);
            }
        }
        out
    }

    /// The flags as the metadata store keeps them: their bits in decimal
    /// (the printed form loses `n` next to `A`, as Redis's does).
    pub fn stored(self) -> Vec<u8> {
        self.0.to_string().into_bytes()
    }

    /// Reads [`Self::stored`]; empty is none.
    pub fn from_stored(raw: &[u8]) -> Option<Flags> {
        if raw.is_empty() {
            return Some(Flags(0));
        }
        std::str::from_utf8(raw).ok()?.parse().ok().map(Flags)
    }

    /// Whether an event of `class` is published at all: its class is on,
    /// and so is at least one of `K` and `E`.
    pub fn wants(self, class: u32) -> bool {
        self.0 & class != 0 && self.0 & (KEYSPACE | KEYEVENT) != 0
    }

    /// The (channel, message) pairs one event is published as.
    pub fn messages(self, class: u32, event: &str, key: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        if !self.wants(class) {
            return out;
        }
        if self.0 & KEYSPACE != 0 {
            let mut channel = b"__keyspace@0__:".to_vec();
            channel.extend_from_slice(key);
            out.push((channel, event.as_bytes().to_vec()));
        }
        if self.0 & KEYEVENT != 0 {
            out.push((format!("__keyevent@0__:{event}").into_bytes(), key.to_vec()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_and_print_as_redis_does() {
        let shown = |t: &str| Flags::parse(t.as_bytes()).map(Flags::render);
        assert_eq!(shown("KEA").as_deref(), Some("AKE"));
        assert_eq!(shown("Ex").as_deref(), Some("xE"));
        assert_eq!(shown("g$lshzxetdn").as_deref(), Some("A"), "n is not printed with A");
        assert_eq!(shown("Anm").as_deref(), Some("Am"));
        assert_eq!(shown("nK").as_deref(), Some("nK"));
        assert_eq!(shown("").as_deref(), Some(""));
        assert_eq!(shown("Kq"), None);
        let all = Flags::parse(b"AnKE").unwrap();
        assert_eq!(Flags::from_stored(&all.stored()), Some(all), "n survives the store");
        assert_eq!(Flags::from_stored(b""), Some(Flags(0)));
    }

    #[test]
    fn an_event_goes_to_the_channels_its_flags_ask_for() {
        let flags = Flags::parse(b"KEl").unwrap();
        assert_eq!(flags.messages(LIST, "lpush", b"k"), [(b"__keyspace@0__:k".to_vec(), b"lpush".to_vec()), (b"__keyevent@0__:lpush".to_vec(), b"k".to_vec())]);
        assert!(flags.messages(STRING, "set", b"k").is_empty(), "class off");
        assert!(Flags::parse(b"A").unwrap().messages(STRING, "set", b"k").is_empty(), "neither K nor E");
        assert_eq!(Flags::parse(b"Eg").unwrap().messages(GENERIC, "del", b"k").len(), 1);
    }
}
