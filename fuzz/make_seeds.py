#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/: small real fixtures copied from
tests/fixtures, plus a few inputs made here (a real TLS ClientHello from Python's ssl module,
a real sock_diag dump from this kernel, a pcblist_n buffer laid out as pcblist.rs's test
fixture does). Run from the repository root; it only adds or overwrites seed files, so inputs
added by hand (crashes) stay. Re-running changes the kernel capture and the ClientHello only."""
import os, random, shutil, socket, ssl, struct

C = "fuzz/corpus"


def put(target, name, data):
    os.makedirs(f"{C}/{target}", exist_ok=True)
    with open(f"{C}/{target}/{name}", "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def copy(target, src, name=None):
    os.makedirs(f"{C}/{target}", exist_ok=True)
    shutil.copyfile(src, f"{C}/{target}/{name or os.path.basename(src)}")


# binary: thin Mach-O (classic and chained fixups); an ELF importing libcrypto comes from cc.
for f in ("crypto_x86_64", "crypto_chained"):
    # The fixtures carry their build directory in debug strings; a same-length stand-in keeps
    # every offset.
    data = open(f"tests/fixtures/macho/{f}", "rb").read()
    put("binary", f"macho_{f}", data.replace(b"/work/main", b"/build/src"))
import glob, subprocess, tempfile
with tempfile.TemporaryDirectory() as d:
    open(f"{d}/e.c", "w").write("int EVP_EncryptInit_ex(void*,const void*,void*,const unsigned char*,"
                                "const unsigned char*);\nint main(void){return EVP_EncryptInit_ex(0,0,0,0,0);}\n")
    libcrypto = sorted(glob.glob("/usr/lib/*/libcrypto.so.3"))
    if libcrypto and subprocess.run(["cc", "-Os", "-s", "-o", f"{d}/e", f"{d}/e.c", libcrypto[0]]).returncode == 0:
        copy("binary", f"{d}/e", "elf_crypto_x86_64")

# plist_job: XML and binary plists, schedules of every kind, broken ones, the overrides db.
tree = "tests/fixtures/launchd/tree"
for f in ("hourly", "twice-daily", "day-or-weekday", "keepalive-dict", "xpc-activity", "watch",
          "truncated-binary", "malformed", "calendar-invalid", "array-root"):
    copy("plist_job", f"{tree}/Library/LaunchDaemons/com.example.{f}.plist")
copy("plist_job", f"{tree}/var/db/com.apple.xpc.launchd/disabled.plist", "overrides.plist")
copy("plist_job", "tests/fixtures/plist-bomb.bplist")

# observation_line: one line of each kind as the spec writes them, and the edge cases.
put("observation_line", "spec_kinds.jsonl", "\n".join([
    '{"kind":"process","ts":1700000000,"pid":501,"start_time":1699990000,"ppid":1,"uid":501,"path":"/usr/local/bin/agent","name":"agent","cpu_time":12.5,"launchd_label":"com.example.agent"}',
    '{"kind":"flow","start":1700000001,"end":1700000009.5,"pid":501,"process_start":1699990000,"path":"/usr/local/bin/agent","launchd_label":"com.example.agent","protocol":"tcp","local_address":"192.0.2.10","local_port":50123,"remote_address":"203.0.113.9","remote_port":443,"remote_name":"api.example.com","bytes_sent":512,"bytes_received":2048,"state":"CLOSED","last_seen":1700000009,"prev_seen":1700000004,"prev_bytes_sent":100,"prev_bytes_received":200}',
    '{"kind":"payload","ts":1700000002,"pid":501,"path":"/usr/local/bin/agent","protocol":"tcp","remote_address":"203.0.113.9","remote_port":443,"direction":"out","first_bytes":"FgMBAAEB","bytes_seen":6}',
    '{"kind":"payload","ts":1700000002,"protocol":"udp","remote_address":"2001:db8::9","remote_port":3333,"payload_class":"random","entropy":7.1,"bytes_seen":256}',
    '{"kind":"dns","ts":1700000000,"name":"pool.example.com","address":"203.0.113.9","ttl":60}',
    '{"kind":"signing","path":"/usr/local/bin/agent","signer_class":"developer_id","status":"valid","team_id":"ABCDE12345","identifier":"com.example.agent","notarized":1}',
]) + "\n")
put("observation_line", "edge_cases.jsonl", "\n".join([
    '{"kind":"flow","start":1e9,"remote_address":"203.0.113.9","remote_port":57.0,"protocol":"tcp","path":"/a"}',
    '{"kind":"flow","start":1e9,"remote_address":"203.0.113.9","remote_port":57.5,"protocol":"tcp","path":"/a"}',
    '{"kind":"future","x":1}',
    '[1,2,3]',
    '{"kind":"process","ts":1}',
    '',
    '{"kind":"process","ts":1,"pid":-1,"start_time":18446744073709551616,"cpu_time":"NaN"}',
]) + "\n")

# query_context: what osqueryd sends with a generate call.
put("query_context", "osqueryd.json", '{"constraints":[{"name":"label","list":[{"op":2,"expr":"com.a"},{"op":2,"expr":"com.b"}],"affinity":"TEXT"},{"name":"pid","list":[{"op":68,"expr":"0"},{"op":4,"expr":"10"}],"affinity":"BIGINT"},{"name":"path","list":[],"affinity":"TEXT"}],"colsUsed":["label","pid"],"colsUsedBitset":18446744073709551615}')
put("query_context", "limit_offset.json", '{"constraints":[{"name":"label","list":[{"op":74,"expr":"2"},{"op":73,"expr":"1"}]}]}')
put("query_context", "odd_ops.json", '{"constraints":[{"name":"a","list":[{"op":150,"expr":"x"},{"op":"2","expr":"y"},{"op":72,"expr":"z"}]}]}')

# kernel_buffers: a pcblist_n buffer (macOS 13+ shape, one TCP socket), the input that once
# crashed it, a sock_diag dump of this host's TCP sockets, and the text parsers' inputs.
def pcblist(tcp=True):
    def rec(length, kind, fields):
        r = bytearray((length + 7) // 8 * 8)
        struct.pack_into("=II", r, 0, length, kind)
        for off, fmt, val in fields:
            struct.pack_into(fmt, r, off, val) if not isinstance(val, bytes) else r.__setitem__(slice(off, off + len(val)), val)
        return bytes(r)
    gen = struct.pack("=IIQ8x", 24, 1, 100)
    v4 = lambda a: bytes(12) + bytes(a)
    out = gen
    out += rec(104, 0x10, [(16, ">H", 443), (18, ">H", 50123), (28, "=Q", 99), (44, "=B", 1),
                           (48, "", v4([203, 0, 113, 9])), (64, "", v4([192, 0, 2, 10]))])
    out += rec(104, 0x01, [(8, "=Q", 0xDEADBEEF), (36, "=i", 6 if tcp else 17), (64, "=I", 501),
                           (68, "=i", 501), (72, "=i", 0), (76, "=Q", 7)])
    out += rec(32, 0x02, []) + rec(32, 0x04, [])
    out += rec(136, 0x08, [(8 + 32 * i + o, "=Q", 1000 * (i + 1) + o) for i in range(4) for o in (8, 24)])
    if tcp:
        out += rec(204, 0x20, [(36, "=i", 4)])
    return out + gen
put("kernel_buffers", "pcblist_tcp_macos13.bin", pcblist())
copy("kernel_buffers", "tests/fixtures/pcblist-fuzz-crash-1.bin")

def sock_diag_dump():
    # inet_diag_req_v2 for TCP over IPv4, all states: the request our Linux collector sends.
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)  # NETLINK_SOCK_DIAG
    req = struct.pack("=BBBxII", socket.AF_INET, socket.IPPROTO_TCP, 0, 0xFFFFFFFF, 0) + bytes(48)
    s.sendto(struct.pack("=IHHII", 16 + len(req), 20, 0x301, 1, 0) + req, (0, 0))
    data = s.recv(65536)
    s.close()
    return data
try:
    put("kernel_buffers", "sock_diag_tcp4_dump.bin", sock_diag_dump())
except OSError as e:
    print(f"no sock_diag capture here ({e}); keeping the committed one")
put("kernel_buffers", "proc_stat.txt", "12345 (agent (x) y) S 1 12345 12345 0 -1 4194560 800 0 0 0 150 42 0 0 20 0 3 0 987654 12345678 900 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
put("kernel_buffers", "launchctl_list.txt", "PID\tStatus\tLabel\n-\t0\tcom.apple.SafariHistoryServiceAgent\n412\t0\tcom.apple.Finder\n-\t-9\tcom.example.killed\ngarbage line\n501\t-\tcom.example.running\n")
# A small BTF blob with what the descriptor iterator reads (struct file/inode/super_block/
# task_struct members, the bpf_iter_task_file function), in the kernel's order: types, then strings.
def btf_blob():
    strings, types = bytearray(b"\0"), bytearray()
    def name(s):
        if not s:
            return 0
        at = len(strings); strings.extend(s.encode() + b"\0"); return at
    def add(n, kind, vlen, sot, extra=b""):
        types.extend(struct.pack("<III", name(n), (kind << 24) | vlen, sot) + extra)
    add("long unsigned int", 1, 0, 8, struct.pack("<I", 64))    # 1
    add("short unsigned int", 1, 0, 2, struct.pack("<I", 16))   # 2
    add("int", 1, 0, 4, struct.pack("<I", 32))                  # 3
    add("umode_t", 8, 0, 2)                                      # 4
    add("pid_t", 8, 0, 3)                                        # 5
    add("super_block", 4, 1, 1400, struct.pack("<III", name("s_magic"), 1, 768))  # 6
    add("", 2, 0, 6)                                             # 7
    add("inode", 4, 3, 600, struct.pack("<III", name("i_mode"), 4, 0) + struct.pack("<III", name("i_sb"), 7, 320)
        + struct.pack("<III", name("i_ino"), 1, 512))           # 8
    add("", 2, 0, 8)                                             # 9
    add("file", 4, 1, 232, struct.pack("<III", name("f_inode"), 9, 256))  # 10
    add("task_struct", 4, 1, 9000, struct.pack("<III", name("tgid"), 5, 10144))  # 11
    add("", 13, 0, 0)                                            # 12
    add("bpf_iter_task_file", 12, 1, 12)                         # 13
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings)) + bytes(types) + bytes(strings)
put("kernel_buffers", "btf_iter_members.bin", btf_blob())
put("kernel_buffers", "cgroup.txt", "12:pids:/\n1:name=systemd:/system.slice/ssh.service\n0::/system.slice/cron.service\n")

# payload: a real TLS ClientHello with SNI, and the other classes' first bytes.
ctx = ssl.create_default_context()
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname="api.example.com")
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
put("payload", "tls_client_hello.bin", out.read())
put("payload", "http_get.txt", "GET /v1/ping HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: agent/1.0\r\nAccept: */*\r\n\r\n")
put("payload", "ssh_banner.txt", "SSH-2.0-OpenSSH_9.6\r\n")
put("payload", "stratum_subscribe.json", '{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1"]}\n{"id":2,"method":"mining.authorize","params":["wallet.worker","x"]}\n')
put("payload", "dns_query.bin", struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x04pool\x07example\x03com\x00" + struct.pack(">HH", 1, 1))
put("payload", "random_256.bin", random.Random(8).randbytes(256))
put("payload", "short.bin", b"\x00\x01\x02")

# config: the README's example (every key), empty, and a typo that must be an error.
readme = open("README.md").read()
start = readme.index("```toml\n[sampler]") + len("```toml\n")
put("config", "readme_example.toml", readme[start:readme.index("```", start)])
put("config", "empty.toml", "")
put("config", "unknown_key.toml", "[sampler]\nproces_interval = 10\n")
put("config", "negative.toml", "[sampler]\nprocess_interval = -1\n[networks]\ninternal = [\"300.1.2.3/99\"]\n")

# dns: an answer with a CNAME chain and compression pointers, and a pointer loop.
import struct
def dns_answer():
    q = b"".join(bytes([len(l)]) + l.encode() for l in "www.example.com".split(".")) + b"\0"
    m = struct.pack(">HHHHHH", 0x1234, 0x8180, 1, 2, 0, 0) + q + struct.pack(">HH", 1, 1)
    target = b"\x04edge\xc0\x10"  # edge.example.com via a pointer to "example"
    m += b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 60, len(target)) + target
    at = len(m) - len(target)
    m += struct.pack(">H", 0xC000 | at) + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([203, 0, 113, 9])
    return m
put("dns", "cname_chain_answer.bin", dns_answer())
put("dns", "pointer_loop.bin", struct.pack(">HHHHHH", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c")

# capture: link type byte (2 = raw IP), then u16-LE-prefixed IPv4 frames: a TCP handshake, an
# HTTP request with Host, the server's answer; and a DNS answer over UDP.
def ipv4(src, sport, dst, dport, payload, tcp=None):
    if tcp:
        flags, seq = tcp
        l4 = struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
        proto = 6
    else:
        l4 = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
        proto = 17
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, bytes(src), bytes(dst)) + l4
CLIENT, SERVER = [10, 0, 0, 1], [203, 0, 113, 9]
frames = [
    ipv4(CLIENT, 40000, SERVER, 80, b"", (0x02, 1000)),
    ipv4(SERVER, 80, CLIENT, 40000, b"", (0x12, 5000)),
    ipv4(CLIENT, 40000, SERVER, 80, b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n", (0x18, 1001)),
    ipv4(SERVER, 80, CLIENT, 40000, b"HTTP/1.1 200 OK\r\n\r\n", (0x18, 5001)),
    ipv4([10, 0, 0, 53], 53, CLIENT, 33333, dns_answer()),
]
put("capture", "raw_http_flow_and_dns.bin", bytes([2]) + b"".join(struct.pack("<H", len(f)) + f for f in frames))

# ntstat: NetworkStatistics kernel-control messages laid out as ntstat_wire.rs's fixtures do
# (offsets from xnu bsd/net/ntstat.h): one aggregated datagram (added, description, counts,
# closing update, removal, a SUCCESS asking for continuation) with a macOS 14-15 TCP
# descriptor, and the same messages u16-LE length-prefixed (how the harness feeds a client).
def nstat_hdr(ctx, kind, length, flags=0):
    return struct.pack("<QIHH", ctx, kind, length, flags)
def nstat_counts(rx, tx):
    return struct.pack("<10Q8I", 3, rx, 4, tx, *([0] * 6), 0, 0, 1, 1, 1, 0, 12, 0)
def sockaddr4(ip, port):
    return bytes([16, 2]) + struct.pack(">H", port) + bytes(ip) + bytes(20)
def tcp_desc_v14(pid, lport):
    d = bytearray(344)
    struct.pack_into("<QQQ", d, 0, 0x100001092, 0x100001092, 24_000_000 * 100)
    struct.pack_into("<I", d, 76, 4)                      # state ESTABLISHED
    struct.pack_into("<II", d, 116, pid, pid)             # pid, epid
    d[124:152] = sockaddr4([127, 0, 0, 1], lport)
    d[152:180] = sockaddr4([127, 0, 0, 1], 8443)
    d[196:200] = b"curl"
    d[260:276] = bytes([7]) * 16                           # uuid
    struct.pack_into("<II", d, 324, 0, 501)               # persona_id, uid
    struct.pack_into("<I", d, 336, 2)                     # ifnet_properties: loopback
    return bytes(d)
def udp_desc_v12(pid):
    d = bytearray(272)
    d[56:84] = sockaddr4([192, 0, 2, 1], 5353)
    d[84:112] = sockaddr4([192, 0, 2, 53], 53)
    struct.pack_into("<I", d, 128, pid)
    d[132:140] = b"mDNSResp"
    struct.pack_into("<I", d, 196, pid)
    return bytes(d)
def ntstat_messages():
    desc = tcp_desc_v14(4242, 40003)
    return [
        nstat_hdr(0, 10001, 32) + struct.pack("<QI4x", 3, 2),
        nstat_hdr(9, 10003, 40 + len(desc)) + struct.pack("<QQI4x", 3, 0, 2) + desc,
        nstat_hdr(0, 10004, 144) + struct.pack("<QQ", 3, 0) + nstat_counts(10, 20),
        nstat_hdr(0, 10006, 152 + len(desc), 4) + struct.pack("<QQ", 3, 0) + nstat_counts(512, 250)
        + struct.pack("<I4x", 2) + desc,
        nstat_hdr(0, 10002, 24) + struct.pack("<Q", 3),
        nstat_hdr(5, 0, 16, 2),
    ]
put("ntstat", "aggregated_tcp_macos14.bin", b"".join(ntstat_messages()))
put("ntstat", "prefixed_tcp_macos14.bin", b"".join(struct.pack("<H", len(m)) + m for m in ntstat_messages()))
udp = udp_desc_v12(88)
put("ntstat", "udp_desc_macos12.bin", nstat_hdr(1, 10003, 40 + len(udp)) + struct.pack("<QQI4x", 7, 0, 4) + udp)
