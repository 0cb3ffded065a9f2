"""An asyncua OPC UA server for the driver tests, on a loopback port; prints the port.

Usage: opcua_server.py PORT [--secure PKI_DIR] [--user NAME --password SECRET] [--bench N]

Address space (namespace urn:buffer-oracle-writer:test, index 2): ns=2;s=Double, Float,
Int16, Int32, UInt16, UInt32, Boolean, Bad (status BadSensorFailure), Uncertain
(UncertainLastUsableValue), Text (a String), ns=2;i=1001 (a Double); with --bench N also
ns=2;s=Bench.0 .. Bench.N-1 (Doubles), changed together once a second for a number of ticks on the "run" command.

Commands, one JSON object a line on standard input; each answered on standard output as
`reply ID JSON`:
  {"id": 1, "op": "set", "node": "Double", "value": 2.5, "status": "Good",
   "source": "2024-05-06T07:08:09.123456"}   -> {"source": ..., "server": ...}
  {"id": 2, "op": "run", "ticks": 20}        -> {} (then changes every Bench node once a second)
  {"id": 3, "op": "bench"}                   -> {"ticks": N, "changes": M, "late": L}
"""
import asyncio, datetime, json, logging, pathlib, sys

from asyncua import Server, ua
from asyncua.server.user_managers import UserManager
from asyncua.crypto.permission_rules import User, UserRole

logging.disable(logging.WARNING)

NAMESPACE = "urn:buffer-oracle-writer:test"

NODES = [
    ("Double", 1.5, ua.VariantType.Double),
    ("Float", 2.25, ua.VariantType.Float),
    ("Int16", -123, ua.VariantType.Int16),
    ("Int32", -70000, ua.VariantType.Int32),
    ("UInt16", 65535, ua.VariantType.UInt16),
    ("UInt32", 4000000000, ua.VariantType.UInt32),
    ("Boolean", True, ua.VariantType.Boolean),
    ("Bad", 0.0, ua.VariantType.Double),
    ("Uncertain", 7.0, ua.VariantType.Double),
    ("Text", "hello", ua.VariantType.String),
]


class OneUser(UserManager):
    def __init__(self, name, password):
        self.name, self.password = name, password

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username == self.name and password == self.password:
            return User(role=UserRole.User)
        return None


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def utc(text):
    if text is None:
        return datetime.datetime.now(datetime.timezone.utc)
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc)


def iso(moment):
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")


async def main():
    port = int(sys.argv[1])
    secure = arg("--secure")
    user, password = arg("--user"), arg("--password")
    bench = int(arg("--bench", "0"))

    server = Server(user_manager=OneUser(user, password) if user else None)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/test")
    server.set_server_name("buffer-oracle-writer test server")
    # The application URI in the certificate must be the server's: clients check it.
    await server.set_application_uri("urn:buffer-oracle-writer:test-server")
    if secure:
        from asyncua.crypto.cert_gen import setup_self_signed_certificate
        from cryptography.x509.oid import ExtendedKeyUsageOID
        pki = pathlib.Path(secure)
        pki.mkdir(parents=True, exist_ok=True)
        key, cert = pki / "server_key.pem", pki / "server_cert.der"
        await setup_self_signed_certificate(
            key, cert, "urn:buffer-oracle-writer:test-server", "127.0.0.1",
            [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
            {"countryName": "DE", "organizationName": "test", "commonName": "test-server"})
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        server.set_security_policy([
            ua.SecurityPolicyType.NoSecurity,
            ua.SecurityPolicyType.Basic256Sha256_Sign,
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ])
    if user:
        server.set_security_IDs(["Username"])

    idx = await server.register_namespace(NAMESPACE)
    folder = await server.nodes.objects.add_folder(idx, "Test")
    nodes = {}
    for name, value, vtype in NODES:
        nodes[name] = await folder.add_variable(ua.NodeId(name, idx), name, value, vtype)
    nodes["1001"] = await folder.add_variable(ua.NodeId(1001, idx), "Numeric", 10.0, ua.VariantType.Double)
    for node in nodes.values():
        await node.set_writable()
    bench_nodes = [
        await folder.add_variable(ua.NodeId(f"Bench.{i}", idx), f"Bench.{i}", 0.0, ua.VariantType.Double)
        for i in range(bench)
    ]

    async def write(node, value, vtype, status="Good", source=None):
        moment = utc(source)
        dv = ua.DataValue(
            ua.Variant(value, vtype),
            StatusCode=ua.StatusCode(getattr(ua.StatusCodes, status)),
            SourceTimestamp=moment,
            ServerTimestamp=datetime.datetime.now(datetime.timezone.utc),
        )
        await server.write_attribute_value(node.nodeid, dv)
        return moment, dv.ServerTimestamp

    await write(nodes["Bad"], 0.0, ua.VariantType.Double, "BadSensorFailure")
    await write(nodes["Uncertain"], 7.0, ua.VariantType.Double, "UncertainLastUsableValue")

    async with server:
        print(f"listening on 127.0.0.1:{port}", flush=True)
        stats = {"ticks": 0, "changes": 0, "late": 0}

        async def changer(ticks):
            # Tick k at start + k seconds; value = tick x 1000000 + node, source time = the tick.
            start = asyncio.get_running_loop().time()
            for tick in range(1, ticks + 1):
                delay = start + tick - asyncio.get_running_loop().time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    stats["late"] += 1
                moment = datetime.datetime.now(datetime.timezone.utc)
                for i, node in enumerate(bench_nodes):
                    dv = ua.DataValue(ua.Variant(float(tick * 1000000 + i), ua.VariantType.Double),
                                      SourceTimestamp=moment, ServerTimestamp=moment)
                    await server.write_attribute_value(node.nodeid, dv)
                stats["ticks"] += 1
                stats["changes"] += len(bench_nodes)

        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        types = {name: vtype for name, _, vtype in NODES}
        types["1001"] = ua.VariantType.Double
        while True:
            line = await reader.readline()
            if not line:
                await asyncio.Event().wait()  # standard input closed: serve until killed
            command = json.loads(line)
            try:
                if command["op"] == "set":
                    name = command["node"]
                    source, server_ts = await write(nodes[name], command["value"], types[name],
                                                    command.get("status", "Good"), command.get("source"))
                    answer = {"source": iso(source), "server": iso(server_ts)}
                elif command["op"] == "run":
                    asyncio.create_task(changer(int(command["ticks"])))
                    answer = {}
                elif command["op"] == "bench":
                    answer = dict(stats)
                else:
                    answer = {"error": f"unknown op {command['op']}"}
            except Exception as error:  # the test sees the reason
                answer = {"error": repr(error)}
            print(f"reply {command['id']} {json.dumps(answer)}", flush=True)


asyncio.run(main())
