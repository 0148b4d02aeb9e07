"""The air between virtual BLE controllers: emulated straps and a gateway on one bumble link.

`VirtualRadio.device()` gives a powered-on bumble `Device` with its own controller on the link
(an emulated strap, or the gateway's central in-process); `hci_server_controller()` gives a
controller whose HCI another process drives over a transport, as `kmc gateway` drives a USB
dongle.
"""

from __future__ import annotations

from typing import Any

from bumble import hci, ll
from bumble.controller import Controller
from bumble.device import Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink

__all__ = ["VirtualRadio"]

_ADV = hci.HCI_LE_Extended_Advertising_Report_Event.EventType
_SCANNABLE = hci.HCI_LE_Set_Extended_Advertising_Parameters_Command.AdvertisingProperties


class _ScanResponding(Controller):
    """A scanner's controller that reports, for each scannable advertisement, the advertiser's
    scan response data in the SCAN_RSP report (looked up on the link: there is no air)."""

    def on_advertising_pdu(self, pdu: Any) -> None:
        response = self._scan_response_of(pdu) if self.le_scan_enable else None
        if response is None:
            super().on_advertising_pdu(pdu)
            return
        legacy = _ADV.LEGACY_ADVERTISING_PDU_USED | _ADV.CONNECTABLE_ADVERTISING
        for event_type, data in (
            (legacy | _ADV.SCANNABLE_ADVERTISING, pdu.data),
            (legacy | _ADV.SCANNABLE_ADVERTISING | _ADV.SCAN_RESPONSE, response),
        ):
            report = hci.HCI_LE_Extended_Advertising_Report_Event.Report(
                event_type=event_type,
                address_type=pdu.advertiser_address.address_type,
                address=pdu.advertiser_address,
                primary_phy=hci.Phy.LE_1M,
                secondary_phy=hci.Phy.LE_1M,
                advertising_sid=0,
                tx_power=0,
                rssi=-50,
                periodic_advertising_interval=0,
                direct_address_type=0,
                direct_address=hci.Address.ANY,
                data=data,
            )
            self.send_hci_packet(hci.HCI_LE_Extended_Advertising_Report_Event([report]))
        self.le_scan_enable = False  # reported: the rest (a pending connection) as bumble does
        try:
            super().on_advertising_pdu(pdu)
        finally:
            self.le_scan_enable = True

    def _scan_response_of(self, pdu: Any) -> bytes | None:
        if not isinstance(pdu, ll.AdvExtInd) or self.link is None:
            return None
        for controller in self.link.controllers:
            for adv_set in controller.advertising_sets.values():
                if (
                    adv_set.enabled
                    and adv_set.address == pdu.advertiser_address
                    and adv_set.parameters is not None
                    and adv_set.parameters.advertising_event_properties
                    & _SCANNABLE.SCANNABLE_ADVERTISING
                ):
                    return bytes(adv_set.scan_response_data)
        return None


class _ResettingController(_ScanResponding):
    """HCI Reset drops the LE links, as a real controller's reset does (Core spec Vol 4, Part E,
    7.3.2): a gateway restarted after a crash resets its dongle and finds its straps
    advertising again. (bumble's emulated controller leaves them connected.)"""

    def on_hci_reset_command(self, command: Any) -> Any:
        for connection in list(self.le_connections.values()):
            connection.send_ll_control_pdu(
                ll.TerminateInd(hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR)
            )
        self.le_connections.clear()
        return super().on_hci_reset_command(command)


class VirtualRadio:
    """The air between virtual BLE controllers (one bumble LocalLink)."""

    def __init__(self) -> None:
        self.link = LocalLink()
        self._next = 1

    def _new_address(self) -> str:
        address = f"F0:00:00:00:{self._next >> 8:02X}:{self._next & 0xFF:02X}"
        self._next += 1
        return address

    def hci_server_controller(self, name: str, source: Any, sink: Any) -> Controller:
        """A controller on this link whose HCI is reached through a transport (e.g. bumble's
        `tcp-server:`): a gateway in another process drives it, as it would a USB dongle."""
        return _ResettingController(
            name,
            host_source=source,
            host_sink=sink,
            link=self.link,
            public_address=self._new_address(),
        )

    async def device(self, name: str, address: str | None = None) -> Device:
        """A powered-on bumble device with its own controller on this link. With `address`,
        the device that had it leaves the air first: a strap rebooting keeps its address."""
        if address is None:
            address = self._new_address()
        else:
            for old in [c for c in self.link.controllers if str(c.random_address) == address]:
                self.link.remove_controller(old)
        controller = _ScanResponding(name, link=self.link, public_address=address)
        host = Host()
        host.set_packet_sink(controller)
        controller.host = host
        device = Device(name=name, address=Address(address), host=host)
        await device.power_on()
        return device
