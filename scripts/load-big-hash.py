#!/usr/bin/env python3
# Usage: load-big-hash.py PORT KEY FIELDS [VALUE_BYTES]: HSETs FIELDS fields
# (f0, f1, ...) of VALUE_BYTES (default 50) into KEY, 1,000 a command.
import socket, sys
port=int(sys.argv[1]); key=sys.argv[2]; n=int(sys.argv[3]); vlen=int(sys.argv[4]) if len(sys.argv)>4 else 50
s=socket.create_connection(("127.0.0.1",port))
def enc(*a):
    out=b"*%d\r\n"%len(a)
    for x in a:
        x=x if isinstance(x,bytes) else str(x).encode()
        out+=b"$%d\r\n%s\r\n"%(len(x),x)
    return out
v=b"v"*vlen
for start in range(0,n,1000):
    args=["HSET",key]
    for i in range(start,min(n,start+1000)):
        args+=[b"f%d"%i, v]
    s.sendall(enc(*args))
    buf=b""
    while not buf.endswith(b"\r\n"): buf+=s.recv(100)
    if not buf.startswith(b":"): print(buf); sys.exit(1)
print("loaded",key,n)
