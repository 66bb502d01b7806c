//! Who may use the admin API.
//!
//! The admin API moves partitions, drains and removes nodes, changes the
//! throttle: on an address others can reach, anyone who reaches it could do
//! all of that. With a token configured ([`AdminAuth`], from a file of
//! tokens), every request needs one of them, as `Authorization: Bearer
//! TOKEN` (the CLI and `evenkeel bench` send `EVENKEEL_ADMIN_TOKEN` or the
//! first token of `EVENKEEL_ADMIN_TOKEN_FILE`) or as the password of HTTP
//! Basic authentication, any user name (what a browser asks for, so the
//! dashboard opens in one). Refused: 401 with a JSON error and a
//! `WWW-Authenticate` challenge for both schemes, counted in
//! `evenkeel_admin_requests_refused_total{reason}`.
//!
//! Left open whatever the token: `/metrics` (Prometheus scrapes it), and
//! `/healthz` and `/readyz` (load balancers and orchestrators probe them).
//! They change nothing and carry figures, not keys or values.
//!
//! Several tokens may be valid at once (one per line of the file), so a
//! token is rotated without a moment where clients are refused: add the
//! new one, move the clients to it, then remove the old one. The file is
//! followed (read again at most every 10 s by a request, by content): no
//! restart; a changed file that is not valid is logged and the tokens in
//! use kept (`evenkeel_admin_token_reloads_total{outcome}`).
//!
//! [`check_exposure`] refuses to serve the admin API on an address other
//! than loopback without a token unless the operator says it is meant
//! (`--admin-insecure`), as CockroachDB refuses to start open without
//! `--insecure`.
//!
//! Tokens are compared in constant time (`subtle`), so the time a refusal
//! takes says nothing about how much of a guess was right. Only their
//! count is ever printed ([`AdminAuth`]'s `Debug`), and the audit log
//! names a caller by its token's number in the file.
//!
//! The audit log: every request that can change something (any method but
//! GET and HEAD) is logged once answered, at info level under the target
//! `evenkeel::audit`, with the peer's address, the token's number (when
//! tokens are on), method, path and status; every refusal too, with the
//! peer and why. Counted in `evenkeel_admin_changes_total{status}`.

use crate::followed::{Followed, RELOAD_CHECK_EVERY};
use axum::http::{HeaderValue, header};
use base64::Engine as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// The environment variable the admin clients (CLI, bench) read a token
/// from.
pub const TOKEN_ENV: &str = "EVENKEEL_ADMIN_TOKEN";
/// The environment variable naming a token file: the servers' token file
/// when no flag or configuration names one, and the clients' when
/// [`TOKEN_ENV`] is not set (its first token).
pub const TOKEN_FILE_ENV: &str = "EVENKEEL_ADMIN_TOKEN_FILE";
/// The shortest token accepted: a guessable token protects nothing.
pub const MIN_TOKEN_LEN: usize = 16;

/// Paths served without a token.
const OPEN_PATHS: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

/// The tokens the admin API accepts; clones share them. Read from a file,
/// they follow it ([`crate::followed`]).
#[derive(Clone)]
pub struct AdminAuth {
    tokens: Arc<Followed<Vec<String>>>,
}

impl PartialEq for AdminAuth {
    fn eq(&self, other: &Self) -> bool {
        self.tokens.get() == other.tokens.get()
    }
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminAuth {{ {} token(s) }}", self.token_count())
    }
}

/// What [`AdminAuth::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// With the token's number (1 for the file's first): who it was, for
    /// the audit log, without the secret.
    Allowed(usize),
    /// No `Authorization` header, or one of another scheme.
    Missing,
    /// A token that is not one of ours (or a malformed header).
    Refused,
}

impl AdminAuth {
    /// From tokens as given; each must be at least [`MIN_TOKEN_LEN`]
    /// characters of visible ASCII (what fits in a header as is), and
    /// there must be one.
    pub fn new(tokens: Vec<String>) -> Result<AdminAuth, String> {
        checked(&tokens)?;
        Ok(AdminAuth { tokens: Arc::new(Followed::fixed(tokens)) })
    }

    /// From a file: one token per line; blank lines and lines starting
    /// with `#` are skipped, spaces around a token ignored. The file is
    /// followed: at most every [`RELOAD_CHECK_EVERY`] a request reads it
    /// again, and a changed file whose tokens are valid replaces them (so
    /// a token is added or withdrawn without a restart); one that is not
    /// is logged and the tokens in use kept.
    pub fn from_file(path: &Path) -> Result<AdminAuth, String> {
        let shown = path.to_path_buf();
        let parse = move |contents: &[Vec<u8>]| tokens_of_file(&shown, &String::from_utf8_lossy(&contents[0]));
        let tokens = Followed::new("the admin token file", "evenkeel_admin_token_reloads_total", vec![path.to_path_buf()], parse)?;
        Ok(AdminAuth { tokens: Arc::new(tokens) })
    }

    pub fn token_count(&self) -> usize {
        self.tokens.get().len()
    }

    /// Whether `authorization` (the request's header, if any) carries one
    /// of the tokens, as a bearer token or a Basic password.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> Verdict {
        self.check_within(authorization, RELOAD_CHECK_EVERY)
    }

    /// [`Self::check`], looking at the token file again if `every` has
    /// passed since the last look.
    pub fn check_within(&self, authorization: Option<&HeaderValue>, every: Duration) -> Verdict {
        let tokens = self.tokens.current(every);
        let Some(value) = authorization else { return Verdict::Missing };
        let Ok(value) = value.to_str() else { return Verdict::Refused };
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let given: Vec<u8> = if scheme.eq_ignore_ascii_case("bearer") {
            rest.trim().as_bytes().to_vec()
        } else if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else { return Verdict::Refused };
            // user:password; the user name is not checked.
            match decoded.iter().position(|&b| b == b':') {
                Some(colon) => decoded[colon + 1..].to_vec(),
                None => return Verdict::Refused,
            }
        } else {
            return Verdict::Missing;
        };
        // Every token is compared, so the time taken does not say which
        // (or whether an earlier one) matched.
        let mut which = 0u64;
        for (i, t) in tokens.iter().enumerate() {
            which.conditional_assign(&(i as u64 + 1), t.as_bytes().ct_eq(&given));
        }
        match which {
            0 => Verdict::Refused,
            n => Verdict::Allowed(n as usize),
        }
    }
}

/// Whether `path` is served without a token.
pub fn is_open(path: &str) -> bool {
    OPEN_PATHS.contains(&path)
}

/// Valid tokens: at least one, each as [`check_token`] wants.
fn checked(tokens: &[String]) -> Result<(), String> {
    if tokens.is_empty() {
        return Err("no token given".into());
    }
    for (i, t) in tokens.iter().enumerate() {
        check_token(t).map_err(|e| format!("token {}: {e}", i + 1))?;
    }
    Ok(())
}

/// The tokens of a token file's `text`, valid.
fn tokens_of_file(path: &Path, text: &str) -> Result<Vec<String>, String> {
    let tokens = parse_tokens(text);
    if tokens.is_empty() {
        return Err(format!("the admin token file {} holds no token (one per line; `openssl rand -hex 32` makes one)", path.display()));
    }
    checked(&tokens).map_err(|e| format!("the admin token file {}: {e}", path.display()))?;
    Ok(tokens)
}

/// The lines of a token file that hold tokens.
fn parse_tokens(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

fn check_token(token: &str) -> Result<(), String> {
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a token is visible ASCII without spaces (it travels in an HTTP header)".into());
    }
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!("a token needs at least {MIN_TOKEN_LEN} characters, this one has {} (`openssl rand -hex 32` makes one)", token.len()));
    }
    Ok(())
}

/// The value of the `Authorization` header an admin client sends: from
/// [`TOKEN_ENV`], else the first token of the file [`TOKEN_FILE_ENV`]
/// names; None when neither is set.
pub fn client_authorization() -> Result<Option<String>, String> {
    let token = match std::env::var(TOKEN_ENV) {
        Ok(token) => token.trim().to_string(),
        Err(_) => match std::env::var_os(TOKEN_FILE_ENV) {
            Some(path) => {
                let path = Path::new(&path);
                let text = std::fs::read_to_string(path).map_err(|e| format!("{TOKEN_FILE_ENV}: reading {}: {e}", path.display()))?;
                parse_tokens(&text).into_iter().next().ok_or_else(|| format!("{TOKEN_FILE_ENV}: {} holds no token", path.display()))?
            }
            None => return Ok(None),
        },
    };
    check_token(&token).map_err(|e| format!("{TOKEN_ENV}: {e}"))?;
    Ok(Some(format!("Bearer {token}")))
}

/// Refuses to serve the admin API on `addr` without a token unless it is
/// a loopback address (only this machine reaches it) or `insecure` says
/// that is meant.
pub fn check_exposure(addr: SocketAddr, auth: Option<&AdminAuth>, insecure: bool) -> Result<(), String> {
    if auth.is_some() || insecure || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "the admin API would listen on {addr} without authentication, and whoever reaches it could move partitions and drain or remove nodes: \
         give it a token file (--admin-token-file FILE, [cluster] admin_token_file or {TOKEN_FILE_ENV}; `openssl rand -hex 32 > FILE` makes one) \
         or pass --admin-insecure ([cluster] admin_insecure = true) if the network is trusted"
    ))
}

/// The `WWW-Authenticate` challenges a refusal carries: Basic first, so a
/// browser asks for it.
pub fn challenges() -> [(header::HeaderName, HeaderValue); 2] {
    [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"evenkeel admin\", charset=\"UTF-8\"")), (header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"evenkeel admin\""))]
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123";
    const B: &str = "fedcba9876543210fedc";

    fn auth() -> AdminAuth {
        AdminAuth::new(vec![A.into(), B.into()]).unwrap()
    }

    fn header(v: &str) -> HeaderValue {
        HeaderValue::from_str(v).unwrap()
    }

    fn basic(user_pass: &str) -> HeaderValue {
        header(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass)))
    }

    #[test]
    fn a_bearer_token_or_basic_password_of_any_listed_token_passes() {
        let a = auth();
        assert_eq!(a.check(Some(&header(&format!("Bearer {A}")))), Verdict::Allowed(1));
        assert_eq!(a.check(Some(&header(&format!("bearer  {B} ")))), Verdict::Allowed(2));
        assert_eq!(a.check(Some(&basic(&format!("admin:{A}")))), Verdict::Allowed(1));
        assert_eq!(a.check(Some(&basic(&format!(":{B}")))), Verdict::Allowed(2));
    }

    #[test]
    fn anything_else_is_missing_or_refused() {
        let a = auth();
        assert_eq!(a.check(None), Verdict::Missing);
        assert_eq!(a.check(Some(&header("Digest abc"))), Verdict::Missing);
        assert_eq!(a.check(Some(&header(&format!("Bearer {A}x")))), Verdict::Refused);
        assert_eq!(a.check(Some(&header(&format!("Bearer {}", &A[..A.len() - 1])))), Verdict::Refused);
        assert_eq!(a.check(Some(&header("Bearer "))), Verdict::Refused);
        // The user name is not a password.
        assert_eq!(a.check(Some(&basic(&format!("{A}:nope")))), Verdict::Refused);
        assert_eq!(a.check(Some(&basic(A))), Verdict::Refused);
        assert_eq!(a.check(Some(&header("Basic !!!not-base64"))), Verdict::Refused);
    }

    #[test]
    fn token_files_skip_comments_and_blank_lines_and_refuse_weak_tokens() {
        let dir = tempfile_dir("files");
        let file = dir.join("tokens");
        std::fs::write(&file, format!("# rotated 2026-12\n\n  {A}  \n{B}\n")).unwrap();
        assert_eq!(AdminAuth::from_file(&file).unwrap(), auth());
        std::fs::write(&file, "# nothing\n\n").unwrap();
        assert!(AdminAuth::from_file(&file).unwrap_err().contains("holds no token"));
        std::fs::write(&file, "short\n").unwrap();
        assert!(AdminAuth::from_file(&file).unwrap_err().contains("at least 16 characters"));
        std::fs::write(&file, format!("{A} {B}\n")).unwrap();
        assert!(AdminAuth::from_file(&file).unwrap_err().contains("without spaces"));
        assert!(AdminAuth::from_file(&dir.join("absent")).unwrap_err().contains("reading the admin token file"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(format!("{:?}", auth()), "AdminAuth { 2 token(s) }");
    }

    #[test]
    fn a_changed_token_file_is_followed_and_a_broken_one_ignored() {
        let dir = tempfile_dir("reload");
        let file = dir.join("tokens");
        std::fs::write(&file, format!("{A}\n")).unwrap();
        let auth = AdminAuth::from_file(&file).unwrap();
        let shared = auth.clone();
        let bearer = |t: &str| header(&format!("Bearer {t}"));
        let now = Duration::ZERO;
        assert_eq!(auth.check_within(Some(&bearer(B)), now), Verdict::Refused);
        // B added (a rotation's first step): both pass, in every clone.
        std::fs::write(&file, format!("{A}\n{B}\n")).unwrap();
        assert_eq!(auth.check_within(Some(&bearer(B)), Duration::from_secs(3600)), Verdict::Refused, "not looked at before `every`");
        assert_eq!(auth.check_within(Some(&bearer(B)), now), Verdict::Allowed(2));
        assert_eq!(shared.check_within(Some(&bearer(A)), now), Verdict::Allowed(1));
        // A file that is not valid (a weak token): the tokens in use stay.
        std::fs::write(&file, "short\n").unwrap();
        assert_eq!(auth.check_within(Some(&bearer(A)), now), Verdict::Allowed(1));
        std::fs::remove_file(&file).unwrap();
        assert_eq!(auth.check_within(Some(&bearer(B)), now), Verdict::Allowed(2));
        // A withdrawn: refused from then on.
        std::fs::write(&file, format!("{B}\n")).unwrap();
        assert_eq!(auth.check_within(Some(&bearer(A)), now), Verdict::Refused);
        assert_eq!(auth.check_within(Some(&bearer(B)), now), Verdict::Allowed(1));
        assert_eq!(auth.token_count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("evenkeel-auth-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn only_loopback_may_go_without_a_token_unless_insecure_is_asked_for() {
        let lo: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        let lo6: SocketAddr = "[::1]:7070".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:7070".parse().unwrap();
        let lan: SocketAddr = "10.0.0.1:7070".parse().unwrap();
        assert!(check_exposure(lo, None, false).is_ok());
        assert!(check_exposure(lo6, None, false).is_ok());
        assert!(check_exposure(any, None, false).unwrap_err().contains("--admin-token-file"));
        assert!(check_exposure(lan, None, false).is_err());
        assert!(check_exposure(lan, Some(&auth()), false).is_ok());
        assert!(check_exposure(lan, None, true).is_ok());
    }

    #[test]
    fn probes_and_metrics_are_open_and_nothing_else() {
        for p in ["/metrics", "/healthz", "/readyz"] {
            assert!(is_open(p));
        }
        for p in ["/", "/dashboard", "/v1/cluster", "/v1/throttle", "/metrics/", "/healthz?x"] {
            assert!(!is_open(p), "{p}");
        }
    }
}
