"""Two fake members on 127.0.0.1 (kernel-picked ports) that each answer every
request with NOT_LEADER naming the other: the redirect loop of a confused
cluster, for test_clientcore_redirect_loop.sh.

  python3 clientcore_fake_pair.py PORTS_FILE COUNT_FILE SECONDS

writes "PORT_A PORT_B" to PORTS_FILE once listening, keeps the number of
NOT_LEADER answers in COUNT_FILE, and exits after SECONDS. HELLO is answered
BAD_REQUEST, as a 0.1.0 node does (a client takes it as 0.1.0 and goes on).
"""
import select
import socket
import struct
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from acl_wire import pack, unpack  # noqa: E402

MSG_ERROR, MSG_HELLO = 1, 48
WERR_NOT_LEADER, WERR_BAD_REQUEST = 1, 4


def main():
    ports_file, count_file, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    ls = []
    for _ in range(2):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        ls.append(s)
    ports = [s.getsockname()[1] for s in ls]
    with open(ports_file + ".tmp", "w") as f:
        f.write("%d %d\n" % tuple(ports))
    __import__("os").rename(ports_file + ".tmp", ports_file)
    conns = {}  # socket -> [member index, buffer]
    answered = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(conns) < 512:
        r, _, _ = select.select(ls + list(conns), [], [], 0.1)
        for s in r:
            if s in ls:
                c, _ = s.accept()
                conns[c] = [ls.index(s), b""]
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                s.close()
                del conns[s]
                continue
            st = conns[s]
            st[1] += data
            while len(st[1]) >= 4:
                n = struct.unpack(">I", st[1][:4])[0]
                if len(st[1]) < 4 + n:
                    break
                msg, _ = unpack(st[1][4:4 + n])
                st[1] = st[1][4 + n:]
                rid = msg[2]
                if msg[0] == MSG_HELLO:
                    out = [MSG_ERROR, 1, rid, WERR_BAD_REQUEST, "unknown message type 48", None]
                else:
                    other = "127.0.0.1:%d" % ports[1 - st[0]]
                    out = [MSG_ERROR, 1, rid, WERR_NOT_LEADER, "not the leader", other]
                    answered += 1
                    with open(count_file, "w") as f:
                        f.write("%d\n" % answered)
                body = pack(out)
                s.sendall(struct.pack(">I", len(body)) + body)
    for s in list(conns) + ls:
        s.close()


main()
