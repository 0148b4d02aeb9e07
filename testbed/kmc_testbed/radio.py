"""The air between virtual BLE controllers: emulated straps and a gateway on one bumble link.

`VirtualRadio.device()` gives a powered-on bumble `Device` with its own controller on the link
(an emulated strap, or the gateway's central in-process); `hci_server_controller()` gives a
controller whose HCI another process drives over a transport, as `kmc gateway` drives a USB
dongle.

The gateway schedules its straps on the few connection slots of each adapter, and a scheduler
is only tested honestly against controllers that behave as real ones where it matters to it.
bumble's emulated controller accepts any number of links, connects at the strap's next advert
with no set-up time, answers a scan request with the advertising data and lets every
controller hear every other at -50 dBm. The controllers of this radio instead:

- refuse an LE Create Connection beyond `max_connections` links (central and peripheral role
  counted) in its Command Status, with Connection Limit Exceeded (0x09), as NimBLE's
  controller does (Zephyr's says Memory Capacity Exceeded, 0x07);
- report a link only once the first connection events are over: the initiator catches one of
  the peripheral's adverts (one every advertising interval, which bumble's legacy advertiser
  read in ms instead of 0.625 ms units), sends CONNECT_IND, and both hosts get LE Connection
  Complete `connection_setup_delay()` later;
- answer an active scanner's scan request with the advertiser's scan response data;
- hear each other only within range of a log-distance path-loss model, at the RSSI it gives:
  out of range no advert is heard (a connect waits), link traffic waits (as a link layer
  retransmits it until acknowledged) and an established link is lost after its supervision
  timeout (0x08 on both sides), its waiting traffic with it;
- run on a clock `time_scale` times faster than real time, for a ward simulated faster than
  real time.

Periodic advertising (which KMC does not use) is not carried; BR/EDR is carried as bumble
carries it, without range or timing.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Any

from bumble import hci, ll
from bumble.controller import AdvertisingSet, Connection, Controller, LegacyAdvertiser
from bumble.core import PhysicalTransport
from bumble.device import Device
from bumble.hci import Address
from bumble.link import LocalLink

from kmc_host.ble.bumble_backend import QuietHost

__all__ = [
    "CONNECTION_SETUP_INTERVALS",
    "PATH_LOSS_EXPONENT",
    "RSSI_AT_1M_DBM",
    "SENSITIVITY_DBM",
    "STRAP_ADVERTISING_INTERVAL_MS",
    "VirtualRadio",
]

log = logging.getLogger(__name__)

# Received power at 1 m from a 0 dBm BLE transmitter: the "measured power" beacons are
# calibrated with (Apple's iBeacon default, -59 dBm); the reference of the path-loss model.
RSSI_AT_1M_DBM = -59.0
# Path-loss exponent n of the log-distance model, RSSI = RSSI(1 m) - 10 n log10(d): 2 in free
# space; 2.6 measured in offices with soft partitions at 1.9 GHz (Rappaport, Wireless
# Communications, 2nd ed., table 4.3), the nearest to an open ward with curtains and cots.
PATH_LOSS_EXPONENT = 2.6
# Below this nothing is heard. The Core spec asks only -70 dBm of a receiver (Vol 6, Part A,
# 4.1); the strap's ESP32 is specified at -97 dBm; -90 dBm leaves the margin real links need
# for fading and a baby lying on the strap. With the figures above: about 15 m of range.
SENSITIVITY_DBM = -90.0
# The strap firmware's advertising interval (firmware/ble_service.py: gap_advertise(250000)).
STRAP_ADVERTISING_INTERVAL_MS = 250.0
# From CONNECT_IND to LE Connection Complete, in connection intervals after transmitWindowDelay:
# the first connection event is transmitWindowOffset (0 to one interval) plus up to a transmit
# window (up to one more) after it (Core spec Vol 6, Part B, 4.5.3), and the link counts as
# established when the peer has answered in it (4.5.2). Two intervals: the late end.
CONNECTION_SETUP_INTERVALS = 2.0

_TRANSMIT_WINDOW_DELAY_S = 1.25e-3  # Vol 6, Part B, 4.5.3 (CONNECT_IND on the LE 1M PHY)
_ESTABLISHMENT_EVENTS = 6  # Vol 6, Part B, 4.5.2: no answer in 6 events -> 0x3E
_MIN_ADVERTISING_INTERVAL = 0x20  # 20 ms in 0.625 ms units (Vol 4, Part E, 7.8.5)

_Properties = hci.HCI_LE_Set_Extended_Advertising_Parameters_Command.AdvertisingProperties
_CONNECTABLE = int(_Properties.CONNECTABLE_ADVERTISING)
_SCANNABLE = int(_Properties.SCANNABLE_ADVERTISING)
_DIRECTED = int(_Properties.DIRECTED_ADVERTISING)
_LEGACY = int(_Properties.USE_LEGACY_ADVERTISING_PDUS)
_SCAN_RESPONSE = int(hci.HCI_LE_Extended_Advertising_Report_Event.EventType.SCAN_RESPONSE)
_AdvType = hci.HCI_LE_Set_Advertising_Parameters_Command.AdvertisingType
# LE Set Advertising Parameters' Advertising_Type as event properties (Vol 4, Part E, 7.8.53)
_LEGACY_PROPERTIES: dict[int, int] = {
    _AdvType.ADV_IND: 0b0010011,
    _AdvType.ADV_DIRECT_IND: 0b0011101,
    _AdvType.ADV_SCAN_IND: 0b0010010,
    _AdvType.ADV_NONCONN_IND: 0b0010000,
    _AdvType.ADV_DIRECT_IND_LOW_DUTY: 0b0010101,
}
_Report = hci.HCI_LE_Advertising_Report_Event.EventType
_ACTIVE_SCANNING = hci.HCI_LE_Set_Scan_Parameters_Command.ACTIVE_SCANNING


def _legacy_report_type(properties: int, scan_response: bool) -> int:
    """A legacy LE Advertising Report's Event_Type for an advert with these properties."""
    if scan_response:
        return int(_Report.SCAN_RSP)
    if properties & _DIRECTED:
        return int(_Report.ADV_DIRECT_IND)
    if properties & _CONNECTABLE:
        return int(_Report.ADV_IND)
    return int(_Report.ADV_SCAN_IND if properties & _SCANNABLE else _Report.ADV_NONCONN_IND)


@dataclasses.dataclass
class _Connection(Connection):
    """bumble's LE link, with the parameters the air needs: the connection interval (1.25 ms
    units) and the supervision timeout (10 ms units)."""

    interval: int = 0
    supervision_timeout: int = 0


@dataclasses.dataclass
class _Initiation:
    """A CONNECT_IND sent: the link is there once the peer has answered in the first
    connection events."""

    peripheral: _Controller
    connect_ind: ll.ConnectInd
    timer: asyncio.TimerHandle | None = None


@dataclasses.dataclass
class _LegacyAdvertiser(LegacyAdvertiser):
    """Advertises every Advertising_Interval_Min (0.625 ms units; bumble reads them as ms) on the
    radio's clock, and is silent while a CONNECT_IND to it is turning into a link."""

    def _on_timer_fired(self) -> None:
        controller = self.controller
        assert isinstance(controller, _Controller)
        if not controller.is_joining(self):
            self.send_advertising_data()
        self.timer_handle = asyncio.get_running_loop().call_later(
            controller.radio.advertising_period(self.advertising_interval_min),
            self._on_timer_fired,
        )

    def send_advertising_data(self) -> None:
        directed = (_AdvType.ADV_DIRECT_IND, _AdvType.ADV_DIRECT_IND_LOW_DUTY)
        if self.enabled and self.advertising_type not in directed:
            self.controller.send_advertising_pdu(
                ll.AdvInd(advertiser_address=self.address, data=self.advertising_data)
            )


@dataclasses.dataclass
class _AdvertisingSet(AdvertisingSet):
    """An advertising set on the radio's clock (Primary_Advertising_Interval_Min, no 10 ms
    floor), silent while a CONNECT_IND to it is turning into a link."""

    def _on_extended_advertising_timer_fired(self) -> None:
        if not self.enabled:
            return
        controller = self.controller
        assert isinstance(controller, _Controller)
        if not controller.is_joining(self):
            self.send_extended_advertising_data()
        units = self.parameters.primary_advertising_interval_min if self.parameters else 1600
        self.timer_handle = asyncio.get_running_loop().call_later(
            controller.radio.advertising_period(units),
            self._on_extended_advertising_timer_fired,
        )


class _Controller(Controller):
    """A controller that behaves as a real one towards a connection scheduler: a connection
    limit, connection set-up time, scan responses, range and supervision timeout (see the
    module docstring). HCI Reset drops the LE links, as a real controller's reset does (Core
    spec Vol 4, Part E, 7.3.2): a gateway restarted after a crash resets its dongle and finds
    its straps advertising again (bumble's emulated controller leaves them connected)."""

    def __init__(
        self,
        name: str,
        radio: VirtualRadio,
        *,
        position: tuple[float, float],
        max_connections: int | None,
        public_address: str,
        host_source: Any = None,
        host_sink: Any = None,
    ) -> None:
        self.radio = radio
        self.position = (float(position[0]), float(position[1]))
        self.max_connections = max_connections
        # what this controller put on the air, for radio-on time (benchmarks/bench_scheduler.py)
        self.adverts_sent = 0  # advertising events
        self.scan_responses_sent = 0  # SCAN_RSPs, one to each active scanner that heard one
        # central side: CONNECT_INDs sent, by peer address; peripheral side: accepted ones
        self.initiations: dict[Address, _Initiation] = {}
        self.joining: dict[Address, tuple[ll.ConnectInd, LegacyAdvertiser | AdvertisingSet]] = {}
        self._extended_scanning = False
        super().__init__(
            name,
            host_source=host_source,
            host_sink=host_sink,
            link=radio.link,
            public_address=public_address,
        )
        self.le_legacy_advertiser = _LegacyAdvertiser(self)

    # -- what the air asks of a controller

    def answers_to(self, address: Address) -> bool:
        """Whether `address` is this controller's (its own, or the one a link of it uses)."""
        return (
            address in (self.public_address, self.random_address)
            or any(c.self_address == address for c in self.le_connections.values())
            or any(i.connect_ind.initiator_address == address for i in self.initiations.values())
        )

    def is_joining(self, advertiser: LegacyAdvertiser | AdvertisingSet) -> bool:
        return any(a is advertiser for _, a in self.joining.values())

    def advertiser(self, address: Address) -> LegacyAdvertiser | AdvertisingSet | None:
        """The enabled advertising of this controller at `address`, if any."""
        legacy = self.le_legacy_advertiser
        if legacy.enabled and legacy.address == address:
            return legacy
        for advertising_set in self.advertising_sets.values():
            if advertising_set.enabled and advertising_set.address == address:
                return advertising_set
        return None

    @staticmethod
    def properties(advertiser: LegacyAdvertiser | AdvertisingSet) -> int:
        """The advertiser's event properties (Vol 4, Part E, 7.8.53)."""
        if isinstance(advertiser, AdvertisingSet):
            return int(
                advertiser.parameters.advertising_event_properties if advertiser.parameters else 0
            )
        return _LEGACY_PROPERTIES.get(advertiser.advertising_type, 0)

    def slots_used(self) -> int:
        """LE links this controller holds or is setting up (a pending create reserves one)."""
        pending = 1 if self.pending_le_connection is not None else 0
        return len(self.le_connections) + len(self.initiations) + len(self.joining) + pending

    def at_limit(self) -> bool:
        return self.max_connections is not None and self.slots_used() >= self.max_connections

    # -- connection set-up

    def on_hci_le_create_connection_command(
        self, command: hci.HCI_LE_Create_Connection_Command
    ) -> None:
        """Vol 4, Part E, 7.8.12. At the connection limit (Vol 1, Part F, 2.9: "the Controller
        is already at its limit of the number of connections it can support") the command is
        refused in its Command Status, with Connection Limit Exceeded (0x09), and no LE
        Connection Complete follows. A Command Status with a non-zero status says the command
        failed rather than is pending (7.7.15), and the LE Connection Complete is what ends a
        pending create (7.8.12: created, or cancelled). NimBLE's controller refuses the same
        way (ble_ll_conn_hci_create: no free connection state machine -> BLE_ERR_CONN_LIMIT,
        returned as the command's status); Zephyr's also refuses in the Command Status, but
        with Memory Capacity Exceeded (0x07, ll_create_connection: no ll_conn left), so a
        host should take either as "no slot"."""
        if self._refused(command):
            return None
        return super().on_hci_le_create_connection_command(command)

    def on_hci_le_extended_create_connection_command(
        self, command: hci.HCI_LE_Extended_Create_Connection_Command
    ) -> None:
        """Vol 4, Part E, 7.8.66: refused at the limit as LE Create Connection is."""
        if self._refused(command):
            return None
        return super().on_hci_le_extended_create_connection_command(command)

    def _refused(self, command: Any) -> bool:
        """Refuse a create (in its Command Status) that this controller cannot start: one is
        still pending until its LE Connection Complete, CONNECT_IND sent or not (7.8.12:
        Command Disallowed, 0x0C; bumble's handler checks only the initiating part), the peer
        is already connected (Connection Already Exists, 0x0B, as Zephyr's controller answers
        with CONFIG_BT_CTLR_CHECK_SAME_PEER_CONN; bumble's leaves the create pending for
        ever), or no connection slot is free (0x09)."""
        if self.pending_le_connection is not None:
            return False  # bumble's handler answers Command Disallowed
        if self.initiations:
            status = hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR
        elif command.peer_address in self.le_connections:
            status = hci.HCI_ErrorCode.CONNECTION_ALREADY_EXISTS_ERROR
        elif self.at_limit():
            status = hci.HCI_ErrorCode.CONNECTION_LIMIT_EXCEEDED_ERROR
        else:
            return False
        self._send_hci_command_status(status, command.op_code)
        return True

    def on_hci_le_create_connection_cancel_command(
        self, command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        """Vol 4, Part E, 7.8.13: a pending create ends with an LE Connection Complete with
        Unknown Connection Identifier (0x02), after the Command Complete; with none pending
        (or a CONNECT_IND already sent) the cancel is Command Disallowed. (bumble's controller
        answers success and leaves the create pending, so a connect that timed out hangs.)"""
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        event = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        """To the host, as bumble's Controller does, without formatting every packet for a
        debug line nobody asked for (bumble's does it eagerly: a tenth of a ward's emulation
        time goes to it). The host side, the gateway's own cost, is left as bumble has it."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("[%s] controller -> host: %s", self.name, packet)
        if self.host:
            asyncio.get_running_loop().call_soon(self.host.on_packet, bytes(packet))

    def on_air_advertising_pdu(
        self, sender: _Controller, pdu: ll.AdvertisingPdu, rssi: int
    ) -> None:
        """An advertising-channel PDU from `sender`, heard at `rssi` dBm."""
        match pdu:
            case ll.ConnectInd():
                self._on_connect_ind(pdu)
            case ll.AdvInd() | ll.AdvExtInd():
                self._on_advert(sender, pdu, rssi)

    def _on_advert(self, sender: _Controller, pdu: ll.AdvInd | ll.AdvExtInd, rssi: int) -> None:
        advertiser = sender.advertiser(pdu.advertiser_address)
        if advertiser is None:
            return
        properties = self.properties(advertiser)
        if self.le_scan_enable:
            scan_response = None
            if self.le_scan_type == _ACTIVE_SCANNING and properties & _SCANNABLE:
                # SCAN_REQ and SCAN_RSP: the advertiser's scan response data, not its adverts
                scan_response = bytes(advertiser.scan_response_data)
                sender.scan_responses_sent += 1
            self._report(pdu, properties, rssi, scan_response)
        pending = self.pending_le_connection
        if (
            pending is not None
            and pending.peer_address == pdu.advertiser_address
            and properties & _CONNECTABLE
        ):
            self._initiate(sender, pending)

    def _report(
        self,
        pdu: ll.AdvInd | ll.AdvExtInd,
        properties: int,
        rssi: int,
        scan_response: bytes | None,
    ) -> None:
        """Advertising reports as the host asked for them: extended reports after the
        extended scan commands, legacy ones (of legacy adverts only) after the legacy ones."""
        legacy = bool(properties & _LEGACY)
        parts = [(pdu.data, False)] + ([(scan_response, True)] if scan_response is not None else [])
        for data, is_response in parts:
            if self._extended_scanning:
                report = hci.HCI_LE_Extended_Advertising_Report_Event.Report(
                    event_type=(properties & (_CONNECTABLE | _SCANNABLE | _DIRECTED | _LEGACY))
                    | (_SCAN_RESPONSE if is_response else 0),
                    address_type=pdu.advertiser_address.address_type,
                    address=pdu.advertiser_address,
                    primary_phy=hci.Phy.LE_1M,
                    secondary_phy=0 if legacy else hci.Phy.LE_1M,
                    advertising_sid=0xFF if legacy else getattr(pdu, "sid", 0),
                    tx_power=hci.HCI_LE_Extended_Advertising_Report_Event.TX_POWER_INFORMATION_NOT_AVAILABLE,
                    rssi=rssi,
                    periodic_advertising_interval=0,
                    direct_address_type=0,
                    direct_address=hci.Address.ANY,
                    data=data,
                )
                self.send_hci_packet(hci.HCI_LE_Extended_Advertising_Report_Event([report]))
            elif legacy:
                legacy_report = hci.HCI_LE_Advertising_Report_Event.Report(
                    event_type=_legacy_report_type(properties, is_response),
                    address_type=pdu.advertiser_address.address_type,
                    address=pdu.advertiser_address,
                    data=data,
                    rssi=rssi,
                )
                self.send_hci_packet(hci.HCI_LE_Advertising_Report_Event([legacy_report]))

    def _initiate(self, peripheral: _Controller, command: Any) -> None:
        """The initiator caught an advert of the peer: CONNECT_IND; the link is reported when
        the first connection events are over, or fails if the peer never answers."""
        self.pending_le_connection = None
        if isinstance(command, hci.HCI_LE_Extended_Create_Connection_Command):
            interval = command.connection_interval_mins[0]
            latency = command.max_latencies[0]
            timeout = command.supervision_timeouts[0]
        else:
            interval = command.connection_interval_min
            latency = command.max_latency
            timeout = command.supervision_timeout
        own = (
            self.public_address
            if command.own_address_type == hci.OwnAddressType.PUBLIC
            else self.random_address
        )
        connect_ind = ll.ConnectInd(
            initiator_address=own,
            advertiser_address=command.peer_address,
            interval=interval,
            latency=latency,
            timeout=timeout,
        )
        initiation = _Initiation(peripheral, connect_ind)
        self.initiations[command.peer_address] = initiation
        self.send_advertising_pdu(connect_ind)
        initiation.timer = asyncio.get_running_loop().call_later(
            self.radio.connection_setup_delay(interval),
            self._first_connection_events,
            initiation,
        )

    def _on_connect_ind(self, connect_ind: ll.ConnectInd) -> None:
        """A CONNECT_IND: taken if it is for an advertiser of ours that is connectable and we
        have a free slot; otherwise it goes unanswered (the initiator then fails with 0x3E)."""
        advertiser = self.advertiser(connect_ind.advertiser_address)
        if advertiser is None or not self.properties(advertiser) & _CONNECTABLE:
            return
        if self.is_joining(advertiser) or self.at_limit():
            return
        if connect_ind.initiator_address in self.le_connections:
            return  # one link per pair of devices
        self.joining[connect_ind.initiator_address] = (connect_ind, advertiser)

    def _first_connection_events(self, initiation: _Initiation) -> None:
        connect_ind = initiation.connect_ind
        peripheral = initiation.peripheral
        joined = peripheral.joining.get(connect_ind.initiator_address)
        if (
            joined is not None
            and joined[0] is connect_ind
            and self.radio.in_range(self, peripheral)
        ):
            del self.initiations[connect_ind.advertiser_address]
            del peripheral.joining[connect_ind.initiator_address]
            self._link_up(connect_ind)
            peripheral._link_up(connect_ind, advertiser=joined[1])
            return
        # no answer in the first connection events: Connection Failed to be Established
        wait = self.radio.connection_setup_delay(
            connect_ind.interval, _ESTABLISHMENT_EVENTS
        ) - self.radio.connection_setup_delay(connect_ind.interval)
        initiation.timer = asyncio.get_running_loop().call_later(
            max(wait, 0.0), self._not_established, initiation
        )

    def _not_established(self, initiation: _Initiation) -> None:
        connect_ind = initiation.connect_ind
        if self.initiations.get(connect_ind.advertiser_address) is not initiation:
            return
        del self.initiations[connect_ind.advertiser_address]
        peripheral = initiation.peripheral
        joined = peripheral.joining.get(connect_ind.initiator_address)
        if joined is not None and joined[0] is connect_ind:
            del peripheral.joining[connect_ind.initiator_address]  # back to advertising
        self.send_hci_packet(
            hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.CONNECTION_FAILED_TO_BE_ESTABLISHED_ERROR,
                connection_handle=0,
                role=hci.Role.CENTRAL,
                peer_address_type=connect_ind.advertiser_address.address_type,
                peer_address=connect_ind.advertiser_address,
                connection_interval=0,
                peripheral_latency=0,
                supervision_timeout=0,
                central_clock_accuracy=0,
            )
        )

    def _link_up(
        self,
        connect_ind: ll.ConnectInd,
        advertiser: LegacyAdvertiser | AdvertisingSet | None = None,
    ) -> None:
        """The link exists: LE Connection Complete to this side's host (the peripheral's
        advertising ends with it)."""
        central = advertiser is None
        peer = connect_ind.advertiser_address if central else connect_ind.initiator_address
        connection = _Connection(
            controller=self,
            handle=self.allocate_connection_handle(),
            role=hci.Role.CENTRAL if central else hci.Role.PERIPHERAL,
            self_address=connect_ind.initiator_address
            if central
            else connect_ind.advertiser_address,
            peer_address=peer,
            link=self.link,
            transport=PhysicalTransport.LE,
            link_type=hci.HCI_Connection_Complete_Event.LinkType.ACL,
            interval=connect_ind.interval,
            supervision_timeout=connect_ind.timeout,
        )
        self.le_connections[peer] = connection
        self.send_hci_packet(
            hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.SUCCESS,
                connection_handle=connection.handle,
                role=connection.role,
                peer_address_type=peer.address_type,
                peer_address=peer,
                connection_interval=connect_ind.interval,
                peripheral_latency=connect_ind.latency,
                supervision_timeout=connect_ind.timeout,
                central_clock_accuracy=0,
            )
        )
        if isinstance(advertiser, AdvertisingSet):
            self.send_hci_packet(
                hci.HCI_LE_Advertising_Set_Terminated_Event(
                    status=hci.HCI_ErrorCode.SUCCESS,
                    advertising_handle=advertiser.handle,
                    connection_handle=connection.handle,
                    num_completed_extended_advertising_events=0,
                )
            )
        if advertiser is not None:
            advertiser.stop()

    # -- parameters the air needs

    def on_hci_le_connection_update_command(
        self, command: hci.HCI_LE_Connection_Update_Command
    ) -> None:
        connection = self.find_le_connection_by_handle(command.connection_handle)
        if isinstance(connection, _Connection):
            connection.interval = command.connection_interval_max
            connection.supervision_timeout = command.supervision_timeout
        return super().on_hci_le_connection_update_command(command)

    def on_ll_control_pdu(self, sender_address: Address, packet: ll.ControlPdu) -> None:
        connection = self.le_connections.get(sender_address)
        if isinstance(packet, ll.ConnectionUpdateInd) and isinstance(connection, _Connection):
            connection.interval = packet.interval
            connection.supervision_timeout = packet.timeout
        super().on_ll_control_pdu(sender_address, packet)

    def on_hci_le_set_scan_enable_command(
        self, command: hci.HCI_LE_Set_Scan_Enable_Command
    ) -> hci.HCI_StatusReturnParameters:
        self._extended_scanning = False
        return super().on_hci_le_set_scan_enable_command(command)

    def on_hci_le_set_extended_scan_parameters_command(
        self, command: hci.HCI_LE_Set_Extended_Scan_Parameters_Command
    ) -> hci.HCI_StatusReturnParameters:
        """bumble drops the scan type here; active scanning is what brings scan responses."""
        if command.scan_types:
            self.le_scan_type = command.scan_types[0]
        return super().on_hci_le_set_extended_scan_parameters_command(command)

    def on_hci_le_set_extended_scan_enable_command(
        self, command: hci.HCI_LE_Set_Extended_Scan_Enable_Command
    ) -> hci.HCI_StatusReturnParameters:
        self._extended_scanning = True
        return super().on_hci_le_set_extended_scan_enable_command(command)

    def on_hci_le_set_advertising_set_random_address_command(
        self, command: hci.HCI_LE_Set_Advertising_Set_Random_Address_Command
    ) -> hci.HCI_StatusReturnParameters:
        self._advertising_set(command.advertising_handle)
        return super().on_hci_le_set_advertising_set_random_address_command(command)

    def on_hci_le_set_extended_advertising_parameters_command(
        self, command: hci.HCI_LE_Set_Extended_Advertising_Parameters_Command
    ) -> hci.HCI_LE_Set_Extended_Advertising_Parameters_ReturnParameters:
        self._advertising_set(command.advertising_handle)
        return super().on_hci_le_set_extended_advertising_parameters_command(command)

    def _advertising_set(self, handle: int) -> None:
        if handle not in self.advertising_sets:
            self.advertising_sets[handle] = _AdvertisingSet(controller=self, handle=handle)

    # -- power

    def on_hci_reset_command(self, command: Any) -> Any:
        """HCI Reset: the LE links are dropped (the peers are told), and the controller stops
        advertising, scanning and connecting, as after power-on."""
        for connection in list(self.le_connections.values()):
            connection.send_ll_control_pdu(
                ll.TerminateInd(hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR)
            )
        self.le_connections.clear()
        self.quiet()
        return super().on_hci_reset_command(command)

    def quiet(self) -> None:
        """Stop advertising, scanning and connecting (a reset, or power gone)."""
        self.pending_le_connection = None
        for initiation in list(self.initiations.values()):
            if initiation.timer is not None:
                initiation.timer.cancel()
            joined = initiation.peripheral.joining.get(initiation.connect_ind.initiator_address)
            if joined is not None and joined[0] is initiation.connect_ind:
                del initiation.peripheral.joining[initiation.connect_ind.initiator_address]
        self.initiations.clear()
        self.joining.clear()
        self.le_scan_enable = False
        self.le_legacy_advertiser.stop()
        for advertising_set in self.advertising_sets.values():
            advertising_set.stop()
        self.advertising_sets.clear()


class _Air(LocalLink):
    """The link between the radio's controllers, through the radio's range model.

    Adverts (and CONNECT_IND) reach the controllers in range, at the RSSI of their distance.
    Link-layer traffic (ACL data and LL control PDUs) between two controllers out of range of
    each other is not delivered; as a real link layer retransmits each packet until it is
    acknowledged, it is delivered, in order, if they come back in range before the
    supervision timeout, and discarded when the link is lost."""

    def __init__(self, radio: VirtualRadio) -> None:
        super().__init__()
        self.radio = radio
        self.held: dict[tuple[Controller, Controller], collections.deque[Callable[[], None]]] = {}

    def add_controller(self, controller: Controller) -> None:
        if not isinstance(controller, _Controller):
            raise TypeError(
                "a VirtualRadio's controllers come from device() or hci_server_controller()"
            )
        super().add_controller(controller)

    def send_advertising_pdu(
        self, sender_controller: Controller, packet: ll.AdvertisingPdu
    ) -> None:
        if sender_controller not in self.controllers:
            return  # off the air (powered off): its timers may still fire
        if isinstance(packet, ll.AdvInd | ll.AdvExtInd) and isinstance(
            sender_controller, _Controller
        ):
            sender_controller.adverts_sent += 1
        loop = asyncio.get_running_loop()
        for receiver in self.controllers:
            if receiver is sender_controller:
                continue
            rssi = self.radio.rssi(sender_controller, receiver)
            if rssi >= self.radio.sensitivity_dbm:
                loop.call_soon(
                    receiver.on_air_advertising_pdu,  # type: ignore[attr-defined]
                    sender_controller,
                    packet,
                    max(-127, min(20, round(rssi))),
                )

    def send_acl_data(
        self,
        sender_controller: Controller,
        destination_address: Address,
        transport: PhysicalTransport,
        data: bytes,
    ) -> None:
        if transport != PhysicalTransport.LE:
            return super().send_acl_data(sender_controller, destination_address, transport, data)
        receiver = self.find_le_controller(destination_address)
        if receiver is None:
            return
        source = sender_controller.random_address
        self.carry(
            sender_controller,
            receiver,
            lambda: receiver.on_link_acl_data(source, transport, data),
        )

    def send_ll_control_pdu(
        self, sender_address: Address, receiver_address: Address, packet: ll.ControlPdu
    ) -> None:
        receiver = self.find_le_controller(receiver_address)
        if receiver is None:
            return  # the peer is off the air: nobody answers
        sender = self.find_le_controller(sender_address)
        deliver = lambda: receiver.on_ll_control_pdu(sender_address, packet)  # noqa: E731
        if sender is None:
            asyncio.get_running_loop().call_soon(deliver)
        else:
            self.carry(sender, receiver, deliver)

    def carry(self, sender: Controller, receiver: Controller, deliver: Callable[[], None]) -> None:
        """Deliver now if in range and nothing is held before it; else hold it."""
        key = (sender, receiver)
        if key not in self.held and self.radio.in_range(sender, receiver):
            asyncio.get_running_loop().call_soon(deliver)
            return
        self.held.setdefault(key, collections.deque()).append(deliver)
        self.radio._supervise(sender, receiver)

    def release(self, a: Controller, b: Controller) -> None:
        """Back in range: what was held between a and b arrives, in order."""
        loop = asyncio.get_running_loop()
        for key in ((a, b), (b, a)):
            for deliver in self.held.pop(key, ()):
                loop.call_soon(deliver)

    def discard(self, a: Controller, b: Controller) -> None:
        self.held.pop((a, b), None)
        self.held.pop((b, a), None)


class VirtualRadio:
    """The air between virtual BLE controllers (one bumble LocalLink), with range, connection
    limits and timing of a real radio (see the module docstring).

    `time_scale`: simulated seconds per wall second; every delay of the radio (advertising
    interval, connection set-up, supervision timeout) is divided by it. The hosts' own timers
    (a connect timeout, ATT's 30 s) are the hosts' and are not scaled. Other arguments: the
    path-loss model (`rssi_at_1m_dbm`, `path_loss_exponent`, `sensitivity_dbm`, see the
    module constants) and `connection_setup_intervals` (`CONNECTION_SETUP_INTERVALS`)."""

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        rssi_at_1m_dbm: float = RSSI_AT_1M_DBM,
        path_loss_exponent: float = PATH_LOSS_EXPONENT,
        sensitivity_dbm: float = SENSITIVITY_DBM,
        connection_setup_intervals: float = CONNECTION_SETUP_INTERVALS,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self.rssi_at_1m_dbm = rssi_at_1m_dbm
        self.path_loss_exponent = path_loss_exponent
        self.sensitivity_dbm = sensitivity_dbm
        self.connection_setup_intervals = connection_setup_intervals
        self.link = _Air(self)
        self._next = 1
        self._supervision: dict[frozenset[Controller], asyncio.TimerHandle] = {}

    def _new_address(self) -> str:
        address = f"F0:00:00:00:{self._next >> 8:02X}:{self._next & 0xFF:02X}"
        self._next += 1
        return address

    # -- controllers and devices

    def hci_server_controller(
        self,
        name: str,
        source: Any,
        sink: Any,
        *,
        position: tuple[float, float] = (0.0, 0.0),
        max_connections: int | None = None,
        public_address: str | None = None,
    ) -> Controller:
        """A controller on this link whose HCI is reached through a transport (e.g. bumble's
        `tcp-server:`): a gateway in another process drives it, as it would a USB dongle.
        `max_connections`: LE links it holds at most (None: no limit); `public_address`: a
        dongle plugged in again keeps its own (default: a new one)."""
        return _Controller(
            name,
            self,
            position=position,
            max_connections=max_connections,
            public_address=public_address or self._new_address(),
            host_source=source,
            host_sink=sink,
        )

    async def device(
        self,
        name: str,
        address: str | None = None,
        *,
        position: tuple[float, float] = (0.0, 0.0),
        max_connections: int | None = None,
        advertising_interval_ms: float | None = None,
    ) -> Device:
        """A powered-on bumble device with its own controller on this link. With `address`,
        the device that had it leaves the air first (as at a power cut: its peers lose their
        links to it after the supervision timeout): a strap rebooting keeps its address.

        `advertising_interval_ms`: the interval of the device's adverts when its
        `start_advertising()` is given none (`Device.advertising_interval_min/max`; None
        leaves bumble's 1000 ms). An emulated strap advertises at the firmware's own
        (`STRAP_ADVERTISING_INTERVAL_MS`), which the testbed's `gap_advertise` passes on."""
        if address is None:
            address = self._new_address()
        else:
            for old in [c for c in self.link.controllers if str(c.random_address) == address]:
                self.power_off(old)
        controller = _Controller(
            name,
            self,
            position=position,
            max_connections=max_connections,
            public_address=address,
        )
        host = QuietHost()  # the gateway's own: packets formatted only for a debug log
        host.set_packet_sink(controller)
        controller.host = host
        device = Device(name=name, address=Address(address), host=host)
        if advertising_interval_ms is not None:
            device.advertising_interval_min = advertising_interval_ms
            device.advertising_interval_max = advertising_interval_ms
        await device.power_on()
        return device

    def controller(self, device_or_controller: Device | Controller) -> Controller:
        """The controller on this radio of a device (or the controller itself)."""
        controller: Any = device_or_controller
        if isinstance(device_or_controller, Device):
            controller = device_or_controller.host.hci_sink
        if not isinstance(controller, _Controller) or controller.radio is not self:
            raise ValueError(f"{device_or_controller!r} is not on this radio")
        return controller

    def power_off(self, controller: Controller) -> None:
        """The controller leaves the air with no word to anyone: its peers' links to it run
        into their supervision timeout."""
        for other in list(self.link.controllers):
            if other is not controller and self._linked(controller, other):
                self._supervise(controller, other)
        if isinstance(controller, _Controller):
            controller.quiet()
            controller.le_connections.clear()
        self.link.remove_controller(controller)

    # -- range

    def move(
        self, device_or_controller: Device | Controller, position: tuple[float, float]
    ) -> None:
        """Put a device (or controller) at `position` (metres). Links to controllers now out of
        range start their supervision timeout; those back in range carry on, with what was
        held for them."""
        controller = self.controller(device_or_controller)
        assert isinstance(controller, _Controller)
        controller.position = (float(position[0]), float(position[1]))
        for other in list(self.link.controllers):
            if other is controller:
                continue
            if self.in_range(controller, other):
                timer = self._supervision.pop(frozenset((controller, other)), None)
                if timer is not None:
                    timer.cancel()
                self.link.release(controller, other)
            elif self._linked(controller, other):
                self._supervise(controller, other)

    def position(self, device_or_controller: Device | Controller) -> tuple[float, float]:
        controller = self.controller(device_or_controller)
        assert isinstance(controller, _Controller)
        return controller.position

    def rssi(self, a: Device | Controller, b: Device | Controller) -> float:
        """The RSSI (dBm) each of a and b hears the other at: the log-distance model, with the
        distance taken as at least the 1 m reference distance."""
        pa = getattr(self._as_controller(a), "position", (0.0, 0.0))
        pb = getattr(self._as_controller(b), "position", (0.0, 0.0))
        distance = max(1.0, math.dist(pa, pb))
        return self.rssi_at_1m_dbm - 10.0 * self.path_loss_exponent * math.log10(distance)

    def in_range(self, a: Device | Controller, b: Device | Controller) -> bool:
        """Whether a and b hear each other (both on the air, and above the sensitivity)."""
        ca, cb = self._as_controller(a), self._as_controller(b)
        on_air = ca in self.link.controllers and cb in self.link.controllers
        return on_air and self.rssi(ca, cb) >= self.sensitivity_dbm

    def _as_controller(self, what: Device | Controller) -> Controller:
        return self.controller(what) if isinstance(what, Device) else what

    # -- time

    def advertising_period(self, interval_units: int) -> float:
        """Wall seconds between adverts for an advertising interval in 0.625 ms units."""
        units = max(interval_units, _MIN_ADVERTISING_INTERVAL)
        return units * 0.625e-3 / self.time_scale

    def connection_setup_delay(self, interval_units: int, intervals: float | None = None) -> float:
        """Wall seconds from CONNECT_IND to LE Connection Complete for a connection interval in
        1.25 ms units: transmitWindowDelay plus `connection_setup_intervals` intervals."""
        if intervals is None:
            intervals = self.connection_setup_intervals
        return (_TRANSMIT_WINDOW_DELAY_S + intervals * interval_units * 1.25e-3) / self.time_scale

    # -- supervision

    def _linked(self, a: Controller, b: Controller) -> bool:
        return bool(self._links(a, b))

    def _links(self, a: Controller, b: Controller) -> list[tuple[Controller, Connection]]:
        """The two sides' connections of a link between a and b (each side that has one)."""
        out = []
        for side, other in ((a, b), (b, a)):
            answers = getattr(other, "answers_to", None)
            for connection in side.le_connections.values():
                if answers is not None and answers(connection.peer_address):
                    out.append((side, connection))
        return out

    def _supervise(self, a: Controller, b: Controller) -> None:
        """a and b no longer hear each other: unless they do again within the supervision
        timeout, their link is lost on both sides with Connection Timeout (0x08)."""
        key = frozenset((a, b))
        if key in self._supervision:
            return
        links = self._links(a, b)
        timeouts = [getattr(c, "supervision_timeout", 0) for _, c in links]
        delay = max(timeouts, default=0) * 10e-3 / self.time_scale
        self._supervision[key] = asyncio.get_running_loop().call_later(
            delay, self._supervision_timeout, a, b
        )

    def _supervision_timeout(self, a: Controller, b: Controller) -> None:
        self._supervision.pop(frozenset((a, b)), None)
        if self.in_range(a, b):
            self.link.release(a, b)
            return
        self.link.discard(a, b)
        for side, connection in self._links(a, b):
            if side.le_connections.get(connection.peer_address) is connection:
                log.debug(
                    "%s: link to %s lost (supervision timeout)", side.name, connection.peer_address
                )
                side.on_le_disconnected(connection, hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR)


class TcpDongle:
    """A USB dongle for a gateway in another process (or task): a controller on `radio` whose
    HCI is served on a TCP port (`[ble] hci = "tcp-client:127.0.0.1:<port>"`), that can be
    pulled out and plugged in again. Unplugged, its controller leaves the air (the straps'
    links to it run into their supervision timeout) and its HCI connection closes, so the
    gateway's transport ends as it does when a USB device goes; no connection is taken until it
    is plugged again, as a controller just powered, with the same public address."""

    def __init__(
        self,
        radio: VirtualRadio,
        port: int,
        *,
        position: tuple[float, float] = (0.0, 0.0),
        max_connections: int | None = None,
    ) -> None:
        self.radio = radio
        self.port = port
        self.position = position
        self.max_connections = max_connections
        self.address: str | None = None
        self.controller: Controller | None = None
        self._transport: Any = None

    @property
    def plugged(self) -> bool:
        return self._transport is not None

    async def plug(self) -> None:
        from bumble.transport import open_transport

        self._transport = await open_transport(f"tcp-server:127.0.0.1:{self.port}")
        self.controller = self.radio.hci_server_controller(
            "dongle",
            self._transport.source,
            self._transport.sink,
            position=self.position,
            max_connections=self.max_connections,
            public_address=self.address,
        )
        self.address = str(self.controller.public_address)

    async def unplug(self) -> None:
        assert self._transport is not None and self.controller is not None
        self.radio.power_off(self.controller)
        server = self._transport.server
        server.close()  # no new HCI connection is taken
        if self._transport.sink.transport is not None:
            self._transport.sink.transport.close()  # the gateway's side sees its transport end
        await server.wait_closed()
        self._transport = self.controller = None
