use super::*;
use crate::cmd::find;

fn user(rules: &[&str]) -> User {
    let raw: Vec<Bytes> = rules.iter().map(|r| Bytes::copy_from_slice(r.as_bytes())).collect();
    User::new("u").with_rules(&raw).expect("valid rules")
}

fn refused(rules: &[&str]) -> String {
    let raw: Vec<Bytes> = rules.iter().map(|r| Bytes::copy_from_slice(r.as_bytes())).collect();
    User::new("u").with_rules(&raw).expect_err("invalid rules")
}

fn args(a: &[&str]) -> Vec<Bytes> {
    a.iter().map(|x| Bytes::copy_from_slice(x.as_bytes())).collect()
}

fn check(u: &User, a: &[&str]) -> Result<(), Denied> {
    let a = args(a);
    u.check(find(&String::from_utf8_lossy(&a[0]).to_ascii_lowercase()).expect("a served command"), &a)
}

#[test]
fn the_default_user_may_do_everything_and_logs_in_with_the_configured_password() {
    let open = User::default_user(None);
    assert!(open.unrestricted() && open.needs_no_password() && open.accepts(b"anything"));
    assert_eq!(open.describe().join(" "), "on nopass ~* &* +@all");
    let closed = User::default_user(Some("s3cret"));
    assert!(closed.unrestricted() && !closed.needs_no_password());
    assert!(closed.accepts(b"s3cret") && !closed.accepts(b"other"));
    // Redis's form: the password only as its SHA-256.
    assert_eq!(closed.describe().join(" "), format!("on #{} ~* &* +@all", hex(&digest(b"s3cret"))));
    assert!(!closed.describe().join(" ").contains("s3cret"));
}

#[test]
fn commands_are_allowed_by_name_subcommand_and_category_in_order() {
    let u = user(&["on", "nopass", "allkeys", "+@read", "-@dangerous", "+set", "+client|list"]);
    assert_eq!(check(&u, &["GET", "k"]), Ok(()));
    assert_eq!(check(&u, &["set", "k", "v"]), Ok(()));
    assert_eq!(check(&u, &["DEL", "k"]), Err(Denied::Command("del".into())));
    // KEYS is @read and @dangerous: the later rule wins.
    assert_eq!(check(&u, &["KEYS", "*"]), Err(Denied::Command("keys".into())));
    assert_eq!(check(&u, &["CLIENT", "LIST"]), Ok(()));
    assert_eq!(check(&u, &["client", "kill", "1.2.3.4:5"]), Err(Denied::Command("client|kill".into())));
    // A whole container, then one subcommand taken away.
    let c = user(&["+config", "-config|set", "allkeys"]);
    assert_eq!(check(&c, &["CONFIG", "GET", "x"]), Ok(()));
    assert_eq!(check(&c, &["CONFIG", "SET", "x", "y"]), Err(Denied::Command("config|set".into())));
    // A later rule on the same target replaces the earlier one.
    let again = user(&["+get", "-get", "+get"]);
    assert_eq!(again.describe().join(" "), "off resetchannels -@all +get");
    // +@all and -@all start the command rules over.
    assert_eq!(user(&["+get", "+@all"]).describe().join(" "), "off resetchannels +@all");
    assert_eq!(user(&["+@all", "-get", "nocommands", "+set"]).describe().join(" "), "off resetchannels -@all +set");
}

#[test]
fn keys_and_channels_are_checked_against_their_patterns() {
    let u = user(&["on", "+@all", "~app:*", "~{t}*", "&news.*"]);
    assert!(!u.unrestricted());
    assert_eq!(check(&u, &["GET", "app:1"]), Ok(()));
    assert_eq!(check(&u, &["GET", "other"]), Err(Denied::Key(Bytes::from_static(b"other"))));
    // Every key of a multi-key command, movable keys too.
    assert_eq!(check(&u, &["MSET", "app:1", "v", "x", "v"]), Err(Denied::Key(Bytes::from_static(b"x"))));
    assert_eq!(check(&u, &["ZUNIONSTORE", "app:d", "2", "app:a", "no"]), Err(Denied::Key(Bytes::from_static(b"no"))));
    assert_eq!(check(&u, &["EVAL", "return 1", "1", "nope"]), Err(Denied::Key(Bytes::from_static(b"nope"))));
    assert_eq!(check(&u, &["EVAL", "return 1", "1", "app:z"]), Ok(()));
    assert_eq!(check(&u, &["PUBLISH", "news.sport", "m"]), Ok(()));
    assert_eq!(check(&u, &["PUBLISH", "gossip", "m"]), Err(Denied::Channel(Bytes::from_static(b"gossip"))));
    assert_eq!(check(&u, &["SUBSCRIBE", "news.a", "other"]), Err(Denied::Channel(Bytes::from_static(b"other"))));
    // A pattern subscription must be one of the user's patterns itself.
    assert_eq!(check(&u, &["PSUBSCRIBE", "news.*"]), Ok(()));
    assert_eq!(check(&u, &["PSUBSCRIBE", "news.s*"]), Err(Denied::Channel(Bytes::from_static(b"news.s*"))));
    // Keyless commands need no key pattern.
    assert_eq!(check(&u, &["PING"]), Ok(()));
    let none = user(&["+@all", "resetchannels"]);
    assert_eq!(check(&none, &["GET", "a"]), Err(Denied::Key(Bytes::from_static(b"a"))));
}

/// Redis 7.0's answers to ACL DRYRUN and ACL LIST for the same user.
#[test]
fn selectors_allow_a_command_that_one_of_them_allows_whole() {
    // Given over several arguments, joined as Redis joins them.
    let u = user(&["on", "nopass", "+get", "~a*", "(+set ~b*)", "(+incr", "%R~c* &ch)", "()"]);
    assert_eq!(u.describe().join(" "), "on nopass ~a* resetchannels -@all +get (~b* resetchannels -@all +set) (%R~c* resetchannels &ch -@all +incr) (resetchannels -@all)");
    assert_eq!(check(&u, &["GET", "a1"]), Ok(()));
    assert_eq!(check(&u, &["SET", "b1", "v"]), Ok(()));
    // Each refuses: the key (over the command) is the reason given.
    assert_eq!(check(&u, &["GET", "b1"]), Err(Denied::Key(Bytes::from_static(b"b1"))));
    assert_eq!(check(&u, &["SET", "a1", "v"]), Err(Denied::Key(Bytes::from_static(b"a1"))));
    assert_eq!(check(&u, &["INCR", "c1"]), Err(Denied::Key(Bytes::from_static(b"c1"))));
    assert_eq!(check(&u, &["MGET", "a1", "b1"]), Err(Denied::Command("mget".into())));
    assert_eq!(check(&u, &["PUBLISH", "ch", "x"]), Err(Denied::Command("publish".into())));
    // Between two keys, the later one.
    let two = user(&["+mget", "~a*", "(+mget ~b*)"]);
    assert_eq!(check(&two, &["MGET", "a1", "b1", "c1"]), Err(Denied::Key(Bytes::from_static(b"b1"))));
    assert_eq!(check(&two, &["MGET", "b1", "a1"]), Err(Denied::Key(Bytes::from_static(b"a1"))));
    // A selector's channel and key permissions count for subscribers and
    // for scripts, and clearselectors drops them.
    assert!(u.may_use_channel(b"ch", false) && !u.may_use_channel(b"other", false));
    let s = script_user(&u.permission_rules()).unwrap();
    assert_eq!(check(&s, &["SET", "b1", "v"]), Ok(()));
    let cleared = u.with_rules(&args(&["clearselectors"])).unwrap();
    assert_eq!(cleared.describe().join(" "), "on nopass ~a* resetchannels -@all +get");
    assert_eq!(check(&cleared, &["SET", "b1", "v"]), Err(Denied::Command("set".into())));
    assert_eq!(User::from_stored(&u.stored()).unwrap().describe(), u.describe());
    assert!(u.with_rules(&args(&["reset"])).unwrap().selectors.is_empty());
}

/// Redis 7.0's answers to ACL DRYRUN for the same user.
#[test]
fn read_only_and_write_only_key_patterns_follow_the_key_specs() {
    let u = user(&["on", "+@all", "%R~r*", "%W~w*"]);
    assert_eq!(check(&u, &["GET", "r1"]), Ok(()));
    assert_eq!(check(&u, &["GET", "w1"]), Err(Denied::Key(Bytes::from_static(b"w1"))));
    assert_eq!(check(&u, &["SET", "w1", "v"]), Ok(()));
    assert_eq!(check(&u, &["SET", "r1", "v"]), Err(Denied::Key(Bytes::from_static(b"r1"))));
    // INCR reads and writes; SET ... GET reads too.
    assert_eq!(check(&u, &["INCR", "w1"]), Err(Denied::Key(Bytes::from_static(b"w1"))));
    assert_eq!(check(&u, &["SET", "w1", "v", "GET"]), Err(Denied::Key(Bytes::from_static(b"w1"))));
    // EXISTS neither reads nor writes the value: any pattern will do.
    assert_eq!(check(&u, &["EXISTS", "w1"]), Ok(()));
    assert_eq!(check(&u, &["EXISTS", "x"]), Err(Denied::Key(Bytes::from_static(b"x"))));
    assert_eq!(check(&u, &["COPY", "r1", "w1"]), Ok(()));
    assert_eq!(check(&u, &["COPY", "w1", "r1"]), Err(Denied::Key(Bytes::from_static(b"w1"))));
    assert_eq!(check(&u, &["DEL", "w1"]), Ok(()));
    assert_eq!(user(&["%R~a", "%W~b", "%RW~c", "~d", "%WR~e"]).describe().join(" "), "off %R~a %W~b ~c ~d ~e resetchannels -@all");
    // The same pattern again adds what it allows; %RW~* is allkeys.
    assert_eq!(user(&["%R~a", "%R~a", "%W~a"]).describe().join(" "), "off ~a resetchannels -@all");
    assert_eq!(user(&["%RW~*"]).describe().join(" "), "off ~* resetchannels -@all");
}

#[test]
fn passwords_are_added_removed_and_kept_only_as_digests() {
    let u = user(&["on", ">one", ">two", ">one"]);
    assert!(u.accepts(b"one") && u.accepts(b"two") && !u.accepts(b"three") && !u.nopass);
    let fewer = u.with_rules(&args(&["<one"])).unwrap();
    assert!(!fewer.accepts(b"one") && fewer.accepts(b"two"));
    let by_hash = u.with_rules(&args(&[&format!("!{}", hex(&digest(b"two")))])).unwrap();
    assert!(!by_hash.accepts(b"two") && by_hash.accepts(b"one"));
    let hashed = user(&["on", &format!("#{}", hex(&digest(b"pw")))]);
    assert!(hashed.accepts(b"pw"));
    // nopass takes every password away and lets any in; a new password
    // ends nopass; off lets nobody in.
    let open = u.with_rules(&args(&["nopass"])).unwrap();
    assert!(open.accepts(b"whatever") && open.passwords.is_empty());
    assert!(!open.with_rules(&args(&[">p"])).unwrap().accepts(b"whatever"));
    assert!(!open.with_rules(&args(&["off"])).unwrap().accepts(b"whatever"));
    assert!(!u.with_rules(&args(&["resetpass"])).unwrap().accepts(b"one"));
}

#[test]
fn invalid_rules_are_refused_with_redis_errors_and_change_nothing() {
    assert_eq!(refused(&["on", "+nosuch"]), "ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL");
    assert_eq!(refused(&["+@nosuch"]), "ERR Error in ACL SETUSER modifier '+@nosuch': Unknown command or category name in ACL");
    assert_eq!(refused(&["+client|nosuch"]), "ERR Error in ACL SETUSER modifier '+client|nosuch': Unknown command or category name in ACL");
    assert_eq!(refused(&["bogus"]), "ERR Error in ACL SETUSER modifier 'bogus': Syntax error");
    assert!(refused(&["allkeys", "~a"]).contains("Adding a pattern after the * pattern (or the 'allkeys' flag)"));
    assert!(refused(&["allchannels", "&a"]).contains("Adding a pattern after the * pattern (or the 'allchannels' flag)"));
    assert!(refused(&["<missing"]).ends_with("The password you are trying to remove from the user does not exist"));
    assert!(refused(&["#abc"]).ends_with("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"));
    assert!(refused(&["%X~a"]).ends_with("Syntax error"));
    assert!(refused(&["%~a"]).ends_with("Syntax error"));
    assert!(refused(&["allkeys", "%R~a"]).contains("Adding a pattern after the * pattern"));
    // What evenkeel does not serve is refused, not ignored.
    assert_eq!(refused(&["(+get"]), "ERR Unmatched parenthesis in acl selector starting at '(+get'.");
    assert_eq!(refused(&["(+get ~x) extra"]), "ERR Unmatched parenthesis in acl selector starting at '(+get ~x) extra'.");
    assert_eq!(refused(&["(bogus)"]), "ERR Error in ACL SETUSER modifier '(bogus)': Syntax error");
    assert_eq!(refused(&["(on)"]), "ERR Error in ACL SETUSER modifier '(on)': Syntax error");
    assert!(refused(&["+get|x"]).contains("by their first argument"));
    let u = user(&["on", "+get"]);
    assert!(u.with_rules(&args(&["+set", "+nosuch"])).is_err());
    assert_eq!(u.describe().join(" "), "on resetchannels -@all +get");
}

#[test]
fn the_stored_form_rebuilds_the_same_user() {
    let u = User::new("alice").with_rules(&args(&["on", ">pw", "~a b", "~c*", "&ch", "+@hash", "-hdel", "+client|list"])).unwrap();
    let back = User::from_stored(&u.stored()).unwrap();
    assert_eq!(back.name, "alice");
    assert_eq!(back.describe(), u.describe());
    // A pattern with a space stays one pattern.
    assert!(check(&back, &["HSET", "a b", "f", "v"]).is_ok() && check(&back, &["HGET", "a", "f"]) == Err(Denied::Key(Bytes::from_static(b"a"))));
    assert!(back.accepts(b"pw"));
    assert_eq!(back.root.allowed, u.root.allowed);
    assert!(User::from_stored(br#"{"name": "x", "rules": ["+nosuch"]}"#).is_err());
}

#[test]
fn a_script_runs_with_its_users_permissions() {
    let u = user(&["on", "nopass", "~a*", "+@read", "+eval"]);
    let rules = u.permission_rules();
    assert!(rules.iter().all(|r| !r.starts_with('#') && r != "on" && r != "nopass"));
    let s = script_user(&rules).unwrap();
    assert_eq!(check(&s, &["GET", "ab"]), Ok(()));
    assert_eq!(check(&s, &["GET", "b"]), Err(Denied::Key(Bytes::from_static(b"b"))));
    assert_eq!(check(&s, &["SET", "ab", "v"]), Err(Denied::Command("set".into())));
    assert!(Arc::ptr_eq(&s, &script_user(&rules).unwrap()), "parsed once");
}

#[test]
fn the_log_groups_like_refusals_and_keeps_the_newest() {
    let mut log = Log::default();
    let set = || Bytes::from_static(b"set");
    log.add("command", "toplevel", set(), "alice", "id=1".into());
    log.add("command", "toplevel", set(), "alice", "id=2".into());
    log.add("key", "toplevel", Bytes::from_static(b"k"), "alice", "id=3".into());
    let entries: Vec<_> = log.newest(10).collect();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0].reason, entries[0].count), ("key", 1));
    assert_eq!((entries[1].reason, entries[1].count, entries[1].client_info.as_str()), ("command", 2, "id=2"));
    // Counted again, it is the newest.
    log.add("command", "toplevel", set(), "alice", "id=4".into());
    let entries: Vec<_> = log.newest(10).collect();
    assert_eq!((entries[0].reason, entries[0].count, entries[0].client_info.as_str()), ("command", 3, "id=4"));
    for i in 0..LOG_MAX + 10 {
        log.add("auth", "toplevel", Bytes::from_static(b"AUTH"), &format!("u{i}"), String::new());
    }
    assert_eq!(log.newest(usize::MAX).count(), LOG_MAX);
    assert_eq!(log.newest(1).next().unwrap().username, format!("u{}", LOG_MAX + 9));
}
