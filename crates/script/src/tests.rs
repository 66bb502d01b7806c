use super::*;
use std::collections::HashMap;

/// GET, SET, PING and a command that always fails, over a map.
struct Fake;

impl Commands for Fake {
    fn plan(&self, a: &[Bytes], _resp3: bool, _acl: &[String]) -> Call {
        let reply = |kind| Call::Reply(pb::Reply { kind: Some(kind) });
        match (&String::from_utf8_lossy(&a[0]).to_ascii_lowercase()[..], a.len()) {
            ("get", 2) => Call::Ops {
                ops: vec![(a[1].clone(), Kind::Get(pb::Get::default()))],
                write: false,
                answer: Box::new(|mut r| match r.pop() {
                    Some(R::Value(v)) => pb::Reply { kind: Some(Rk::Bulk(v.value)) },
                    _ => pb::Reply { kind: Some(Rk::Null(pb::Nil {})) },
                }),
            },
            ("set", 3) => Call::Ops {
                ops: vec![(a[1].clone(), Kind::Set(pb::Set { value: a[2].clone(), ..Default::default() }))],
                write: true,
                answer: Box::new(|_| pb::Reply { kind: Some(Rk::Simple("OK".into())) }),
            },
            ("ping", 1) => reply(Rk::Simple("PONG".into())),
            ("publish", 3) => Call::Publish { shard: false, channel: a[1].clone(), message: a[2].clone() },
            ("wrong", _) => reply(Rk::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())),
            _ => reply(Rk::Error("ERR Unknown Redis command called from script".into())),
        }
    }
}

/// A node's side: a map; keys starting `other` are of another slot,
/// `elsewhere` of another partition.
#[derive(Default)]
struct Node {
    data: HashMap<Bytes, Bytes>,
    published: Vec<(Bytes, Bytes)>,
}

impl Node {
    fn access(&mut self, key: &[u8], kind: &Kind) -> Result<R, Access<&'static str>> {
        if key.starts_with(b"other") {
            return Err(Access::Denied("ERR Script attempted to access keys of another slot".into()));
        }
        if key == b"elsewhere" {
            return Err(Access::Abort("elsewhere"));
        }
        Ok(match kind {
            Kind::Get(_) => match self.data.get(key) {
                Some(v) => R::Value(pb::Value { value: v.clone(), ..Default::default() }),
                None => R::Nil(pb::Nil {}),
            },
            Kind::Set(s) => {
                self.data.insert(Bytes::copy_from_slice(key), s.value.clone());
                R::Integer(1)
            }
            _ => unreachable!("the fake plans GET and SET only"),
        })
    }
}

fn script(body: &str, keys: &[&str], args: &[&str]) -> pb::Script {
    let b = |v: &[&str]| v.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect();
    pb::Script { body: Bytes::copy_from_slice(body.as_bytes()), sha: sha1_hex(body.as_bytes()), keys: b(keys), args: b(args), read_only: false, function: String::new(), acl: vec![] }
}

fn engine(limits: Limits) -> Engine {
    Engine::new(Arc::new(Fake), limits)
}

fn run_on(e: &Engine, node: &mut Node, s: &pb::Script) -> Outcome<&'static str> {
    e.run(s, &mut |request| match request {
        Request::Op(key, kind) => node.access(key, kind),
        Request::Publish { channel, message, .. } => {
            node.published.push((Bytes::copy_from_slice(channel), Bytes::copy_from_slice(message)));
            Ok(R::Integer(1))
        }
    })
}

/// The reply of a script that answered.
fn eval(body: &str) -> pb::Reply {
    match run_on(&engine(Limits::default()), &mut Node::default(), &script(body, &[], &[])) {
        Outcome::Answered(r) => r,
        other => panic!("{body}: {other:?}"),
    }
}

fn bulk(s: &str) -> pb::Reply {
    pb::Reply { kind: Some(Rk::Bulk(Bytes::copy_from_slice(s.as_bytes()))) }
}

fn int(n: i64) -> pb::Reply {
    pb::Reply { kind: Some(Rk::Integer(n)) }
}

fn array(items: Vec<pb::Reply>) -> pb::Reply {
    pb::Reply { kind: Some(Rk::Array(pb::ReplyArray { items })) }
}

fn null() -> pb::Reply {
    pb::Reply { kind: Some(Rk::Null(pb::Nil {})) }
}

fn err(e: &str) -> pb::Reply {
    pb::Reply { kind: Some(Rk::Error(e.into())) }
}

fn simple(s: &str) -> pb::Reply {
    pb::Reply { kind: Some(Rk::Simple(s.into())) }
}

/// `<message> script: <sha>, on @user_script:<line>.`
fn script_err(message: &str, body: &str, line: usize) -> pb::Reply {
    err(&format!("{message} script: {}, on @user_script:{line}.", sha1_hex(body.as_bytes())))
}

#[test]
fn return_values_convert_as_redis_converts_them() {
    assert_eq!(eval("return {1, 2.7, 'a', false, true, nil, 5}"), array(vec![int(1), int(2), bulk("a"), null(), int(1)]));
    assert_eq!(eval("return -3.99"), int(-3));
    assert_eq!(eval("return nil"), null());
    assert_eq!(eval("return {1, {2, {3}}, {ok = 'x'}, {err = 'E x'}}"), array(vec![int(1), array(vec![int(2), array(vec![int(3)])]), simple("x"), err("E x")]));
    assert_eq!(eval("return redis.error_reply('-ERR2 x')"), err("ERR2 x"));
    assert_eq!(eval("return redis.status_reply('FINE')"), simple("FINE"));
    assert_eq!(eval("return {err = 3}"), array(vec![]));
    assert_eq!(eval("return redis.sha1hex('')"), bulk("da39a3ee5e6b4b0d3255bfef95601890afd80709"));
    // Error lines are one line.
    assert_eq!(eval("return {err = 'a\\r\\nb'}"), err("a  b"));
    // Nested past the bound: an error, not a stack overflow.
    assert!(matches!(eval("local t = {} local c = t for i = 1, 2000 do c[1] = {} c = c[1] end return t").kind, Some(Rk::Array(_))));
}

#[test]
fn resp3_values_convert_as_redis_converts_them() {
    let reply = |kind: Rk| pb::Reply { kind: Some(kind) };
    assert_eq!(eval("return {double = 1.5}"), reply(Rk::Double("1.5".into())));
    assert_eq!(eval("return {double = 0.1}"), reply(Rk::Double("0.10000000000000001".into())));
    assert_eq!(eval("return {big_number = '12\\r\\n3'}"), reply(Rk::BigNumber("12  3".into())));
    assert_eq!(eval("return {map = {a = 1}}"), reply(Rk::Map(pb::ReplyArray { items: vec![bulk("a"), int(1)] })));
    assert_eq!(eval("return {set = {x = true}}"), reply(Rk::Set(pb::ReplyArray { items: vec![bulk("x")] })));
    assert_eq!(eval("return {verbatim_string = {format = 'markdown', string = 'hi'}}"), reply(Rk::Verbatim(pb::ReplyVerbatim { format: "mar".into(), text: "hi".into() })));
    // Booleans: 1 and null, or after setresp(3) booleans; each script
    // starts with RESP2 again.
    assert_eq!(eval("return {true, false}"), array(vec![int(1), null()]));
    assert_eq!(eval("redis.setresp(3) return {true, false}"), array(vec![reply(Rk::Boolean(true)), reply(Rk::Boolean(false))]));
    assert_eq!(eval("return false"), null());
    // After setresp(3) a null reply is nil, not false.
    assert_eq!(eval("redis.setresp(3) return type(redis.call('get', 'absent'))"), bulk("nil"));
    assert_eq!(eval("return type(redis.call('get', 'absent'))"), bulk("boolean"));
}

#[test]
fn redis_call_runs_commands_and_converts_their_replies() {
    assert_eq!(eval("redis.call('set', 'k', 'v') return redis.call('get', 'k')"), bulk("v"));
    assert_eq!(eval("return redis.call('set', 'k', 'v').ok"), bulk("OK"));
    assert_eq!(eval("return type(redis.call('get', 'absent'))"), bulk("boolean"));
    assert_eq!(eval("return redis.call('ping')"), simple("PONG"));
    // Numbers become arguments as Redis prints them ("%.17g").
    assert_eq!(eval("redis.call('set', 'a', 3.0) redis.call('set', 'b', 0.1) return {redis.call('get', 'a'), redis.call('get', 'b')}"), array(vec![bulk("3"), bulk("0.10000000000000001")]));
    assert_eq!(eval("redis.call('set', 'a', 1e17) redis.call('set', 'b', 2^53) return {redis.call('get', 'a'), redis.call('get', 'b')}"), array(vec![bulk("1e+17"), bulk("9007199254740992")]));
    let body = "return redis.call('get', {})";
    assert_eq!(eval(body), script_err("ERR Lua redis lib command arguments must be strings or integers", body, 1));
    let body = "return redis.call()";
    assert_eq!(eval(body), script_err("ERR Please specify at least one argument for this redis lib call", body, 1));
}

#[test]
fn keys_and_argv_are_the_scripts_arguments() {
    let e = engine(Limits::default());
    let s = script("return {KEYS[1], KEYS[2], ARGV[1], #ARGV}", &["k1", "k2"], &["a1", "a2", "a3"]);
    let Outcome::Answered(r) = run_on(&e, &mut Node::default(), &s) else { panic!() };
    assert_eq!(r, array(vec![bulk("k1"), bulk("k2"), bulk("a1"), int(3)]));
    // The next run on the same state sees its own.
    let s = script("return {ARGV[1], #KEYS, tostring(KEYS[1])}", &[], &["x"]);
    let Outcome::Answered(r) = run_on(&e, &mut Node::default(), &s) else { panic!() };
    assert_eq!(r, array(vec![bulk("x"), int(0), bulk("nil")]));
}

#[test]
fn errors_read_as_redis_7_writes_them() {
    let body = "local x = 1\nreturn redis.call('wrong')";
    assert_eq!(eval(body), script_err("WRONGTYPE Operation against a key holding the wrong kind of value", body, 2));
    let body = "return redis.call('nosuch')";
    assert_eq!(eval(body), script_err("ERR Unknown Redis command called from script", body, 1));
    let body = "\n\nerror('boom')";
    assert_eq!(eval(body), script_err("ERR user_script:3: boom", body, 3));
    let body = "error({err = 'tbl'})";
    assert_eq!(eval(body), script_err("tbl", body, 1));
    let body = "return x";
    assert_eq!(eval(body), script_err("ERR user_script:1: Script attempted to access nonexistent global variable 'x'", body, 1));
    let body = "x = 1";
    assert_eq!(eval(body), script_err("ERR user_script:1: Attempt to modify a readonly table", body, 1));
    let body = "return rawset(_G, 'x', 1)";
    assert_eq!(eval(body), script_err("ERR Attempt to modify a readonly table", body, 1));
    for gone in ["print", "dofile", "loadfile", "require", "setfenv"] {
        let body = format!("return {gone}");
        assert_eq!(eval(&body), script_err(&format!("ERR user_script:1: Script attempted to access nonexistent global variable '{gone}'"), &body, 1));
    }
    // pcall gets a failed command's error line; redis.pcall its table.
    assert_eq!(eval("local ok, e = pcall(redis.call, 'wrong') return {tostring(ok), e}"), array(vec![bulk("false"), bulk("WRONGTYPE Operation against a key holding the wrong kind of value")]));
    assert_eq!(eval("return redis.pcall('wrong')"), err("WRONGTYPE Operation against a key holding the wrong kind of value"));
    // The libraries are read-only too, and stay whole for the next script.
    let e = engine(Limits::default());
    for body in ["string.rep = nil", "rawset(string, 'rep', nil)", "setmetatable(string, nil)"] {
        assert!(matches!(run_on(&e, &mut Node::default(), &script(body, &[], &[])), Outcome::Answered(pb::Reply { kind: Some(Rk::Error(_)) })), "{body}");
    }
    assert!(matches!(run_on(&e, &mut Node::default(), &script("return string.rep('x', 2)", &[], &[])), Outcome::Answered(r) if r == bulk("xx")));
    // rawset still works on the script's own tables.
    assert_eq!(eval("local t = {} rawset(t, 1, 'a') return t"), array(vec![bulk("a")]));
}

#[test]
fn a_script_that_does_not_compile_never_starts() {
    let e = engine(Limits::default());
    match run_on(&e, &mut Node::default(), &script("return 'a' ..", &[], &[])) {
        Outcome::Stopped(r) => assert_eq!(r, err("ERR Error compiling script (new function): user_script:1: unexpected symbol near '<eof>'")),
        other => panic!("{other:?}"),
    }
    assert_eq!(compile_check(b"return 'a' .."), Err("ERR Error compiling script (new function): user_script:1: unexpected symbol near '<eof>'".into()));
    assert_eq!(compile_check(b"return 1"), Ok(()));
    let mut s = script("return 1", &[], &[]);
    s.sha = sha1_hex(b"return 2");
    assert!(matches!(run_on(&e, &mut Node::default(), &s), Outcome::Stopped(_)), "a body that is not its SHA1's");
}

#[test]
fn publish_asks_the_node_which_sends_after_the_commit() {
    let e = engine(Limits::default());
    let mut node = Node::default();
    let Outcome::Answered(r) = run_on(&e, &mut node, &script("return redis.call('publish', 'ch', 'hello')", &[], &[])) else { panic!() };
    assert_eq!(r, int(1));
    assert_eq!(node.published, vec![(Bytes::from_static(b"ch"), Bytes::from_static(b"hello"))]);
    let mut s = script("return redis.call('publish', 'ch', 'x')", &[], &[]);
    s.read_only = true;
    let Outcome::Answered(r) = run_on(&e, &mut node, &s) else { panic!() };
    assert_eq!(r, script_err("ERR Write commands are not allowed from read-only scripts.", "return redis.call('publish', 'ch', 'x')", 1));
    assert_eq!(node.published.len(), 1);
}

#[test]
fn read_only_scripts_may_not_write() {
    let e = engine(Limits::default());
    let body = "redis.call('get', 'k') return redis.call('set', 'k', 'v')";
    let mut s = script(body, &[], &[]);
    s.read_only = true;
    let mut node = Node::default();
    let Outcome::Answered(r) = run_on(&e, &mut node, &s) else { panic!() };
    assert_eq!(r, script_err("ERR Write commands are not allowed from read-only scripts.", body, 1));
    assert!(node.data.is_empty());
}

#[test]
fn a_denied_key_is_an_error_the_script_may_catch_and_an_abort_is_not() {
    let e = engine(Limits::default());
    let mut node = Node::default();
    let s = script("local ok, e = pcall(redis.call, 'get', 'other') return e", &[], &[]);
    let Outcome::Answered(r) = run_on(&e, &mut node, &s) else { panic!() };
    assert_eq!(r, bulk("ERR Script attempted to access keys of another slot"));
    let s = script("redis.call('set', 'a', '1') pcall(redis.call, 'get', 'elsewhere') return redis.call('set', 'b', '2')", &[], &[]);
    assert!(matches!(run_on(&e, &mut node, &s), Outcome::Aborted("elsewhere")));
    assert!(!node.data.contains_key(&b"b"[..]), "nothing runs past an abort");
    // The state goes on (an abort is an ordinary Lua error), and the next
    // script runs on it.
    assert_eq!(e.idle.lock().len(), 1);
    let s = script("return redis.call('get', 'a')", &[], &[]);
    assert!(matches!(run_on(&e, &mut node, &s), Outcome::Answered(_)));
    assert_eq!(e.idle.lock().len(), 1);
}

#[test]
fn a_script_past_its_time_limit_is_stopped_even_if_it_catches_errors() {
    let e = engine(Limits { time: Duration::from_millis(100), ..Limits::default() });
    for body in ["while true do end", "while true do pcall(function() while true do end end) end", "redis.call('set', 'k', 'v') while true do xpcall(function() while true do end end, function() return 1 end) end"] {
        let started = Instant::now();
        match run_on(&e, &mut Node::default(), &script(body, &[], &[])) {
            Outcome::Stopped(r) => assert_eq!(r, err("ERR script stopped: it ran longer than 100 ms, and nothing it wrote was kept"), "{body}"),
            other => panic!("{body}: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{body}");
    }
    // The pool goes on.
    assert!(matches!(run_on(&e, &mut Node::default(), &script("return 1", &[], &[])), Outcome::Answered(_)));
}

#[test]
fn a_script_past_its_memory_limit_is_stopped() {
    let e = engine(Limits { memory: 16 << 20, ..Limits::default() });
    match run_on(&e, &mut Node::default(), &script("local t = {} for i = 1, 1e8 do t[i] = string.rep('x', 100) .. i end", &[], &[])) {
        Outcome::Stopped(r) => assert_eq!(r, err("ERR script stopped: it used more than 16 MiB of memory, and nothing it wrote was kept")),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.idle.lock().len(), 0, "a state out of memory is not kept");
    assert!(matches!(run_on(&e, &mut Node::default(), &script("return 1", &[], &[])), Outcome::Answered(_)));
}

#[test]
fn states_are_reused_and_keep_compiled_scripts() {
    let e = engine(Limits::default());
    let mut node = Node::default();
    for i in 0..3 {
        let s = script("return redis.call('set', 'n', ARGV[1])", &[], &[&i.to_string()]);
        assert!(matches!(run_on(&e, &mut node, &s), Outcome::Answered(_)));
    }
    assert_eq!(node.data[&b"n"[..]], Bytes::from_static(b"2"));
    assert_eq!(e.idle.lock().len(), 1, "one state served every run");
    assert_eq!(e.idle.lock()[0].compiled.len(), 1);
}

fn fcall(e: &Engine, node: &mut Node, code: &str, function: &str, keys: &[&str], args: &[&str]) -> Outcome<&'static str> {
    let mut s = script(code, keys, args);
    s.function = function.into();
    run_on(e, node, &s)
}

#[test]
fn libraries_load_as_function_load_loads_them() {
    let code = "#!lua name=mylib\nredis.register_function('plain', function(keys, args) return {keys[1], args[1]} end)\nredis.register_function{function_name = 'ro', callback = function() return 2 end, flags = {'no-writes'}, description = 'read only'}";
    let lib = load_library(code.as_bytes()).unwrap();
    assert_eq!(lib.name, "mylib");
    assert_eq!(lib.functions, vec![FunctionInfo { name: "plain".into(), description: None, flags: vec![] }, FunctionInfo { name: "ro".into(), description: Some("read only".into()), flags: vec!["no-writes".into()] }]);
    let refused = |code: &str| load_library(code.as_bytes()).unwrap_err();
    assert_eq!(refused("return 1"), "ERR Missing library metadata");
    assert_eq!(refused("#!lua name=x"), "ERR Invalid library metadata");
    assert_eq!(refused("#!js name=x\n"), "ERR Engine 'js' not found");
    assert_eq!(refused("#!lua name=x foo=bar\n"), "ERR Invalid metadata value given: foo=bar");
    assert_eq!(refused("#!lua\nreturn 1"), "ERR Library name was not given");
    assert_eq!(refused("#!lua name=a-b\nreturn 1"), "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long");
    assert_eq!(refused("#!lua name=x\nreturn 1"), "ERR No functions registered");
    assert_eq!(refused("#!lua name=x\nlocal a = "), "ERR Error compiling function: user_function:2: unexpected symbol near '<eof>'");
    assert_eq!(refused("#!lua name=x\nredis.call('set', 'x', 'y')"), "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'");
    assert_eq!(refused("#!lua name=x\nx = 1"), "ERR Error registering functions: ERR user_function:2: Attempt to modify a readonly table");
    assert_eq!(refused("#!lua name=x\nreturn KEYS"), "ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'KEYS'");
    assert_eq!(refused("#!lua name=x\nredis.register_function('g', 5)"), "ERR Error registering functions: ERR second argument to redis.register_function must be a function");
    assert_eq!(refused("#!lua name=x\nredis.register_function{function_name = 'g', callback = function() end, flags = {'bogus'}}"), "ERR Error registering functions: ERR unknown flag given");
    assert_eq!(refused("#!lua name=x\nredis.register_function{function_name = 'g', callback = function() end, nope = 1}"), "ERR Error registering functions: ERR unknown argument given to redis.register_function");
    assert_eq!(refused("#!lua name=x\nredis.register_function('f 1', function() end)"), "ERR Error registering functions: ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long");
    assert_eq!(refused("#!lua name=x\nwhile true do end"), "ERR Error registering functions: the library's code ran longer than 500 ms");
}

#[test]
fn fcall_runs_a_library_function_with_its_keys_and_arguments() {
    let e = engine(Limits::default());
    let mut node = Node::default();
    let code = "#!lua name=lib\nlocal prefix = 'p:'\nredis.register_function('put', function(keys, args) redis.call('set', keys[1], prefix .. args[1]) return redis.call('get', keys[1]) end)\nredis.register_function('fail', function() error('boom') end)\nredis.register_function('globals', function() return KEYS end)";
    let Outcome::Answered(r) = fcall(&e, &mut node, code, "put", &["k"], &["v"]) else { panic!() };
    assert_eq!(r, bulk("p:v"));
    let Outcome::Answered(r) = fcall(&e, &mut node, code, "fail", &[], &[]) else { panic!() };
    assert_eq!(r, err("ERR user_function:4: boom script: fail, on @user_function:4."));
    let Outcome::Answered(r) = fcall(&e, &mut node, code, "globals", &[], &[]) else { panic!() };
    assert_eq!(r, err("ERR user_function:5: Script attempted to access nonexistent global variable 'KEYS' script: globals, on @user_function:5."));
    assert!(matches!(fcall(&e, &mut node, code, "nosuch", &[], &[]), Outcome::Stopped(r) if r == err("ERR Function not found")));
    // EVAL after FCALL on the same state still sees its globals.
    let s = script("return KEYS[1]", &["k1"], &[]);
    assert!(matches!(run_on(&e, &mut node, &s), Outcome::Answered(r) if r == bulk("k1")));
    assert_eq!(e.idle.lock()[0].libraries.len(), 1, "the library was loaded once");
}

#[test]
fn script_kill_stops_running_scripts_of_its_kind() {
    let e = Arc::new(engine(Limits::default()));
    assert_eq!(e.kill(false), 0, "nothing runs");
    let body = "redis.call('set', 'k', 'v')\nwhile true do pcall(function() end) end";
    let spinning = std::thread::spawn({
        let e = e.clone();
        move || run_on(&e, &mut Node::default(), &script(body, &[], &[]))
    });
    let started = Instant::now();
    while e.running.lock().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(e.kill(true), 0, "FUNCTION KILL leaves EVAL's scripts alone");
    assert_eq!(e.kill(false), 1);
    match spinning.join().unwrap() {
        Outcome::Stopped(r) => assert_eq!(r, script_err("ERR Script killed by user with SCRIPT KILL...", body, 2)),
        other => panic!("{other:?}"),
    }
    assert!(e.running.lock().is_empty());
    assert!(matches!(run_on(&e, &mut Node::default(), &script("return 1", &[], &[])), Outcome::Answered(_)), "the next script runs");
}
