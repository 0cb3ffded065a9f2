"""A pymodbus TCP server on a free loopback port, seeded from a JSON file; prints the port."""
import asyncio, json, sys, logging
from pymodbus.datastore import ModbusDeviceContext, ModbusServerContext, ModbusSequentialDataBlock
from pymodbus.server import ModbusTcpServer

logging.disable(logging.WARNING)

async def main(seed_path, port):
    with open(seed_path) as f:
        seed = json.load(f)
    size = 1000
    def block(name, default):
        values = [default] * size
        for address, value in seed.get(name, {}).items():
            values[int(address)] = value
        return ModbusSequentialDataBlock(1, values)
    device = ModbusDeviceContext(co=block("co", False), di=block("di", False),
                                 hr=block("hr", 0), ir=block("ir", 0))
    context = ModbusServerContext(devices=device, single=True)
    server = ModbusTcpServer(context, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    port = server.transport.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{port}", flush=True)
    await server.serving

asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
