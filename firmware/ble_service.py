# The strap's GATT server on MicroPython's `bluetooth` module.
#
# KMC service (docs/protocol.md): Measurement (notify: batches of sample records sized to the
# MTU), Control Point (write: set clock, resume from sequence N, set interval, identify; each
# answered by a notification), Status (read/notify). Plus the Bluetooth SIG services any phone
# app understands: Health Thermometer (0x1809), Battery (0x180F), Device Information (0x180A).
#
# Security: LE Secure Connections with the label passkey (the strap "displays" it: it is
# printed), bonding, MITM protection. Control Point and Status need an authenticated link, and
# the strap itself checks that the link is encrypted with its bond (or that it is being
# commissioned) before it obeys a command or sends a sample or a temperature: data flows only
# after RESUME_FROM, so a foreign central gets nothing (bonds.py has the pairing policy).
# Once bonded the strap pairs with nobody: it does not show its passkey (the link ends), and a
# link is secure only if the stack reports it encrypted, authenticated and bonded and did not
# delete the bond during this connection (a repeat pairing from a copy of the gateway's
# address: bonds.py keeps the keys and hides them until the link ends).
#
# Advertising (docs/protocol.md): the name and the KMC service, and in the scan response one
# status byte, VISIT_NOW, so that a gateway that visits its straps in turns comes at once to a
# strap with news: its alarm is on, or the alarm or the worn state has changed since a bonded
# gateway last resumed from it. Nothing else about the baby is sent in clear. The BLE task
# re-advertises when that byte changes while no central is connected.
#
# The IRQ handler only records events; `pump()` (the BLE task) does the work, so nothing heavy
# runs in interrupt context.
import bluetooth
import protocol as P
from battery import percent
from clock import ticks_diff
from micropython import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)
_IRQ_PASSKEY_ACTION = const(31)

_IO_CAPABILITY_DISPLAY_ONLY = const(0)
_PASSKEY_ACTION_DISP = const(3)

_FLAG_READ = const(0x0002)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)
_FLAG_INDICATE = const(0x0020)
_FLAG_READ_AUTHENTICATED = const(0x0400)
_FLAG_WRITE_AUTHENTICATED = const(0x2000)

SECURE_WITHIN_MS = const(30000)  # unsecured this long (SMP's own timeout): dropped
_DROP = const(1)  # queued actions for the task besides commands (bytes) and re-advertise (None)
_PASSKEY = const(2)

_KMC = (
    bluetooth.UUID(P.KMC_SERVICE_UUID),
    (
        (bluetooth.UUID(P.MEASUREMENT_UUID), _FLAG_NOTIFY),
        (bluetooth.UUID(P.CONTROL_UUID), _FLAG_WRITE | _FLAG_NOTIFY | _FLAG_WRITE_AUTHENTICATED),
        (bluetooth.UUID(P.STATUS_UUID), _FLAG_READ | _FLAG_NOTIFY | _FLAG_READ_AUTHENTICATED),
    ),
)
_HTS = (
    bluetooth.UUID(0x1809),
    (
        (bluetooth.UUID(0x2A1C), _FLAG_INDICATE),  # Temperature Measurement
        (bluetooth.UUID(0x2A1D), _FLAG_READ),  # Temperature Type
    ),
)
_BAS = (bluetooth.UUID(0x180F), ((bluetooth.UUID(0x2A19), _FLAG_READ | _FLAG_NOTIFY),))
_DIS = (
    bluetooth.UUID(0x180A),
    (
        (bluetooth.UUID(0x2A29), _FLAG_READ),  # Manufacturer Name
        (bluetooth.UUID(0x2A24), _FLAG_READ),  # Model Number
        (bluetooth.UUID(0x2A25), _FLAG_READ),  # Serial Number (strap id)
        (bluetooth.UUID(0x2A26), _FLAG_READ),  # Firmware Revision
    ),
)
TEMPERATURE_TYPE_BODY = const(2)
FIRMWARE_VERSION = (0, 1, 0)
MAX_MTU = const(247)


class StrapBLE:
    def __init__(self, ble, strap_id, store, sampler, clock, alarm, cfg, now_ms, bonds, link_ms):
        self.ble = ble
        self.strap_id = strap_id
        self.store = store
        self.sampler = sampler
        self.clock = clock
        self.alarm = alarm
        self.cfg = cfg
        self.now_ms = now_ms  # ticks_ms source
        self.link_ms = link_ms  # real ticks_ms, for link supervision (the emulator's differ)
        self.connected_at = 0
        self.bonds = bonds
        self.conn = None
        self.peer = None  # (addr_type, addr) of the connected central
        self.secure = False  # link encrypted + authenticated with our bond (or commissioning)
        self.mtu = 23
        self.cursor = None  # next seq to send; None until the central asks (OP_RESUME_FROM)
        self.commands = []
        self.sent_packets = 0
        self.errors = 0
        self.refused = 0  # centrals disconnected for not being the bonded gateway
        self._packet = bytearray(MAX_MTU)
        self._status = bytearray(P.STATUS_SIZE)
        self.advertised_status = None  # the status byte of the scan response on the air
        self._changes_at_resume = sampler.changes  # sampler.changes the gateway has seen
        ble.active(True)
        ble.config(gap_name=strap_id, mtu=MAX_MTU)
        ble.config(bond=True, le_secure=True, mitm=True, io=_IO_CAPABILITY_DISPLAY_ONLY)
        ble.irq(self._irq)
        (
            (self.h_meas, self.h_ctrl, self.h_status),
            (self.h_temp, self.h_type),
            (self.h_batt,),
            dis,
        ) = ble.gatts_register_services((_KMC, _HTS, _BAS, _DIS))
        ble.gatts_set_buffer(self.h_ctrl, 16)
        ble.gatts_write(self.h_type, bytes((TEMPERATURE_TYPE_BODY,)))
        values = (
            b"KMC Sense",
            b"KMC strap v1",
            strap_id.encode(),
            ("%d.%d.%d" % FIRMWARE_VERSION).encode(),
        )
        for handle, value in zip(dis, values):
            ble.gatts_write(handle, value)
        self.advertise()

    # -- interrupt context: record only

    def _irq(self, event, data):
        if event == _IRQ_CENTRAL_CONNECT:
            self.conn = data[0]
            self.peer = (data[1], bytes(data[2]))
            self.secure = False
            self.connected_at = self.link_ms()
            self.mtu = 23
            self.cursor = None
            self.bonds.unhide()
        elif event == _IRQ_CENTRAL_DISCONNECT:
            self.conn = None
            self.secure = False
            self.cursor = None
            self.bonds.unhide()  # the gateway's keys, hidden from a repeat pairing, are back
            self.commands.append(None)  # re-advertise from the task
        elif event == _IRQ_ENCRYPTION_UPDATE:
            conn, encrypted, authenticated, bonded = data[0], data[1], data[2], data[3]
            ours = self.peer is not None and (
                self.bonds.is_open() or self.bonds.knows(self.peer[0], self.peer[1])
            )
            # a copy of the gateway's address that paired afresh is not ours: its pairing made
            # the stack delete (here: hide) the bond, and nothing new was stored
            self.secure = bool(
                encrypted and authenticated and bonded and ours and not self.bonds.hiding()
            )
            if not self.secure:
                self.commands.append((_DROP, conn))
        elif event == _IRQ_GET_SECRET:
            return self.bonds.get(data[0], data[1], data[2])
        elif event == _IRQ_SET_SECRET:
            return self.bonds.set(data[0], data[1], data[2])
        elif event == _IRQ_PASSKEY_ACTION:
            if data[1] == _PASSKEY_ACTION_DISP:
                self.commands.append((_PASSKEY, data[0]))
        elif event == _IRQ_GATTS_WRITE:
            if data[1] == self.h_ctrl:
                self.commands.append(bytes(self.ble.gatts_read(self.h_ctrl)))
        elif event == _IRQ_MTU_EXCHANGED:
            self.mtu = min(data[1], MAX_MTU)

    # -- task context

    def advertise(self):
        status = self.advert_status()
        payload = P.advertising_payload(self.strap_id, P.uuid_le(P.KMC_SERVICE_UUID))
        self.ble.gap_advertise(250000, adv_data=payload, resp_data=P.scan_response(status))
        self.advertised_status = status

    def advert_status(self):
        """The scan response's status byte: VISIT_NOW while the cold alarm is on, or while the
        alarm or the worn state has changed since a bonded gateway last resumed (a change during
        a visit is flagged too: the strap cannot know the gateway took it in). No allocation."""
        if self.alarm.active or self.sampler.changes != self._changes_at_resume:
            return P.VISIT_NOW
        return 0

    def pump(self, max_packets=8):
        """Handle queued commands, then send up to max_packets of samples; return packets sent."""
        while self.commands:
            cmd = self.commands.pop(0)
            if cmd is None:
                self.advertise()
            elif isinstance(cmd, tuple):
                self._security(cmd[0], cmd[1])
            else:
                self._command(cmd)
        if self.conn is None and self.advert_status() != self.advertised_status:
            self.advertise()  # news (or none any more): a gateway between visits must hear it
        if (
            self.conn is not None
            and not self.secure
            and ticks_diff(self.link_ms(), self.connected_at) > SECURE_WITHIN_MS
        ):
            self._security(_DROP, self.conn)  # an idle stranger must not hold the strap
        if self.conn is None or self.cursor is None:
            return 0
        sent = 0
        per_packet = P.records_per_packet(self.mtu)
        while sent < max_packets:
            first, n = self.store.read_into(self.cursor, per_packet, self._packet, P.HEADER_SIZE)
            if n == 0:
                break
            P.pack_header(self._packet, n, first)
            size = P.HEADER_SIZE + n * P.RECORD_SIZE
            try:
                self.ble.gatts_notify(self.conn, self.h_meas, memoryview(self._packet)[:size])
            except OSError:  # controller queue full or link gone: try again next time
                self.errors += 1
                break
            self.cursor = first + n
            sent += 1
        self.sent_packets += sent
        return sent

    def _security(self, action, conn):
        passkey = self.cfg["passkey"]
        if action == _PASSKEY and passkey >= 0 and self.bonds.is_open():
            self.ble.gap_passkey(conn, _PASSKEY_ACTION_DISP, passkey)
            return
        # not the bonded gateway, or pairing once bonded (the bonded gateway encrypts with its
        # keys and never pairs again), or no passkey to pair with: end the link
        self.refused += 1
        if conn == self.conn:
            self.secure = False
            self.cursor = None
        try:
            self.ble.gap_disconnect(conn)
        except OSError:
            pass

    def publish_status(self):
        """Refresh Status, Battery Level and Temperature Measurement (every few seconds)."""
        self.ble.gatts_write(self.h_status, self.status())
        self.ble.gatts_write(self.h_batt, bytes((percent(self.sampler.last_battery_v),)))
        if self.conn is not None and self.secure:
            try:
                self.ble.gatts_indicate(
                    self.conn, self.h_temp, P.temperature_measurement(self.sampler.last_infant_c)
                )
            except OSError:
                self.errors += 1

    def status(self):
        """The Status value, packed into the strap's own 24-byte buffer."""
        P.pack_status(
            self._status,
            FIRMWARE_VERSION,
            self.store.oldest(),
            self.store.newest(),
            self.clock.now(),
            self.sampler.last_battery_v,
            self.sampler.health(),
            self.store.fill_percent(),
            self.cfg["interval_ms"],
        )
        return self._status

    def _command(self, cmd):
        # the stack checks too; commands only from the bonded gateway (P.parse_command)
        op, result, value = P.parse_command(cmd, self.secure)
        if result == P.RESULT_OK:
            if op == P.OP_SET_CLOCK:
                self.clock.set(value)
            elif op == P.OP_RESUME_FROM:
                self.cursor = max(value, self.store.oldest())
                self._changes_at_resume = self.sampler.changes  # the gateway has the news now
            elif op == P.OP_SET_INTERVAL:
                self.cfg["interval_ms"] = value
                self.alarm.period_s = value / 1000
            elif op == P.OP_IDENTIFY:
                self.alarm.identify(self.now_ms() + value * 1000)
        if self.conn is not None:
            try:
                self.ble.gatts_notify(self.conn, self.h_ctrl, P.response(op, result))
            except OSError:
                self.errors += 1
        return result
