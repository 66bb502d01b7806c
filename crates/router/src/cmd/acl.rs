//! ACL: the cluster's users ([`crate::acl`]), listed, changed and tried.
//!
//! SETUSER and DELUSER write the metadata store, so every router serves
//! the change (this one before the reply; others as soon as they follow
//! it). SAVE and LOAD answer OK: users are kept in the metadata store as
//! they change, and every router reads them from there, so there is no
//! file to write or read. ACL LOG is this router's.

use super::{c_str, categories, int_arg, wrong_arity};
use crate::acl::{self, User};
use crate::{Router, Session};
use bytes::Bytes;
use evenkeel_resp::Frame;

pub async fn acl(r: &Router, s: &mut Session, a: &[Bytes]) -> Frame {
    let sub = String::from_utf8_lossy(&a[1]).to_ascii_uppercase();
    let n = a.len() - 2;
    match (sub.as_str(), n) {
        ("CAT", 0) => Frame::Array(categories::CATEGORIES.iter().map(|c| Frame::bulk(*c)).collect()),
        ("CAT", 1) => cat(&a[2]),
        ("DELUSER", 1..) => deluser(r, &a[2..]).await,
        ("DRYRUN", 2..) => dryrun(r, &a[2], &a[3..]),
        ("GENPASS", 0) => genpass(256),
        ("GENPASS", 1) => match int_arg(&a[2]) {
            Ok(bits) if (1..=4096).contains(&bits) => genpass(bits as usize),
            Ok(_) => Frame::error("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096"),
            Err(e) => e,
        },
        ("GETUSER", 1) => r.acl.user(&String::from_utf8_lossy(&a[2])).map_or(Frame::Null, |u| u.getuser()),
        ("LIST", 0) => {
            let users = r.acl.users();
            let mut names: Vec<&String> = users.keys().collect();
            names.sort();
            Frame::Array(names.into_iter().map(|n| Frame::bulk(format!("user {n} {}", users[n].describe().join(" ")))).collect())
        }
        ("USERS", 0) => {
            let mut names: Vec<String> = r.acl.users().keys().cloned().collect();
            names.sort();
            Frame::Array(names.into_iter().map(Frame::bulk).collect())
        }
        ("WHOAMI", 0) => Frame::bulk(s.user.name.clone()),
        ("LOG", 0) => log(r, 10),
        ("LOG", 1) if a[2].eq_ignore_ascii_case(b"reset") => {
            r.acl.log().reset();
            Frame::ok()
        }
        ("LOG", 1) => match int_arg(&a[2]) {
            Ok(count) => log(r, count.max(0) as usize),
            Err(e) => e,
        },
        // Kept in the metadata store as they change (see above).
        ("SAVE" | "LOAD", 0) => Frame::ok(),
        ("SETUSER", 1..) => setuser(r, &a[2], &a[3..]).await,
        ("HELP", 0) => Frame::Array(HELP.iter().map(|l| Frame::simple(*l)).collect()),
        // Arity -2: more arguments are the subcommand's own error.
        ("CAT" | "GENPASS" | "LOG", _) => Frame::error(format!("ERR unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.", c_str(&a[1], 128))),
        ("DELUSER" | "DRYRUN" | "GETUSER" | "LIST" | "USERS" | "WHOAMI" | "SAVE" | "LOAD" | "SETUSER" | "HELP", _) => wrong_arity(&format!("acl|{}", sub.to_ascii_lowercase())),
        _ => Frame::error(format!("ERR unknown subcommand '{}'. Try ACL HELP.", c_str(&a[1], 128))),
    }
}

/// ACL CAT category: the commands (and subcommands, `client|kill`) in it.
fn cat(category: &[u8]) -> Frame {
    let name = String::from_utf8_lossy(category).to_ascii_lowercase();
    if !categories::CATEGORIES.contains(&name.as_str()) {
        return Frame::error(format!("ERR Unknown category '{}'", c_str(category, 128)));
    }
    Frame::Array(super::server::in_category(category).into_iter().map(Frame::bulk).collect())
}

async fn setuser(r: &Router, name: &Bytes, rules: &[Bytes]) -> Frame {
    if !acl::valid_name(name) {
        return Frame::error("ERR Usernames can't contain spaces or null characters");
    }
    let name = String::from_utf8_lossy(name).into_owned();
    let current = r.acl.user(&name).map_or_else(|| User::new(&name), |u| (*u).clone());
    let user = match current.with_rules(rules) {
        Ok(u) => u,
        Err(e) => return Frame::error(e),
    };
    match r.acl.put(&user).await {
        Ok(()) => Frame::ok(),
        Err(e) => e,
    }
}

/// Deletes the users named (not `default`); their connections close
/// (through this router now, through others once they follow).
async fn deluser(r: &Router, names: &[Bytes]) -> Frame {
    if names.iter().any(|n| &n[..] == b"default") {
        return Frame::error("ERR The 'default' user cannot be removed");
    }
    let mut deleted = 0;
    for name in names {
        let name = String::from_utf8_lossy(name);
        if r.acl.user(&name).is_none() {
            continue;
        }
        if let Err(e) = r.acl.delete(&name).await {
            return e;
        }
        r.registry.kill(&crate::clients::Filter { user: Some(name.into_owned()), ..Default::default() });
        deleted += 1;
    }
    Frame::Integer(deleted)
}

/// ACL DRYRUN user command args...: OK, or why the user may not run it
/// (a bulk string, as in Redis).
fn dryrun(r: &Router, name: &Bytes, command: &[Bytes]) -> Frame {
    let Some(user) = r.acl.user(&String::from_utf8_lossy(name)) else {
        return Frame::error(format!("ERR User '{}' not found", c_str(name, 128)));
    };
    let Some(spec) = super::find(&String::from_utf8_lossy(&command[0]).to_ascii_lowercase()) else {
        return Frame::error(format!("ERR Command '{}' not found", c_str(&command[0], 128)));
    };
    if !super::arity_ok(spec, command.len()) {
        return wrong_arity(spec.name);
    }
    match user.check(spec, command) {
        Ok(()) => Frame::ok(),
        Err(acl::Denied::Command(c)) => Frame::bulk(format!("This user has no permissions to run the '{c}' command")),
        Err(acl::Denied::Key(k)) => Frame::bulk(format!("This user has no permissions to access the '{}' key", String::from_utf8_lossy(&k))),
        Err(acl::Denied::Channel(c)) => Frame::bulk(format!("This user has no permissions to access the '{}' channel", String::from_utf8_lossy(&c))),
    }
}

/// `bits` of randomness as hex digits (rounded up to whole digits).
fn genpass(bits: usize) -> Frame {
    let digits = bits.div_ceil(4);
    let bytes: Vec<u8> = (0..digits.div_ceil(2)).map(|_| rand::random::<u8>()).collect();
    let mut hexed = acl::hex(&bytes);
    hexed.truncate(digits);
    Frame::bulk(hexed)
}

fn log(r: &Router, count: usize) -> Frame {
    let now = evenkeel_types::unix_ms();
    let log = r.acl.log();
    Frame::Array(
        log.newest(count)
            .map(|e| {
                Frame::Map(vec![
                    (Frame::bulk("count"), Frame::Integer(e.count as i64)),
                    (Frame::bulk("reason"), Frame::bulk(e.reason)),
                    (Frame::bulk("context"), Frame::bulk(e.context)),
                    (Frame::bulk("object"), Frame::Bulk(e.object.clone())),
                    (Frame::bulk("username"), Frame::bulk(e.username.clone())),
                    (Frame::bulk("age-seconds"), Frame::Double(evenkeel_types::float::format_double(now.saturating_sub(e.created_ms) as f64 / 1000.0))),
                    (Frame::bulk("client-info"), Frame::bulk(e.client_info.clone())),
                ])
            })
            .collect(),
    )
}

/// Answers a refused command: logs it in ACL LOG and returns the error.
pub(crate) fn refuse(r: &Router, s: &Session, denied: &acl::Denied, context: &'static str) -> Frame {
    r.acl.denied(denied, context, &s.user.name, s.client.line().trim_end().to_string());
    Frame::error(denied.message())
}

const HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Users are read from the metadata store as they change: nothing to do.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Users are kept in the metadata store as they change: nothing to do.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis 7.0's ACL CAT lists a container whose own categories match
    /// (CLIENT is @slow) besides its subcommands.
    #[test]
    fn a_category_lists_containers_and_subcommands() {
        let Frame::Array(slow) = cat(b"SLOW") else { panic!("an array") };
        for name in ["client", "client|list", "config", "config|set", "acl", "acl|setuser"] {
            assert!(slow.contains(&Frame::bulk(name)), "{name}");
        }
        assert!(!slow.contains(&Frame::bulk("get")));
        assert_eq!(cat(b"nosuch"), Frame::error("ERR Unknown category 'nosuch'"));
    }
}
