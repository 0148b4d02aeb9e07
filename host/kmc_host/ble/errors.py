"""The one BLE error the gateway tells apart: a link that could not be secured."""

from bleak.exc import BleakError

from ..errors import KmcError


class LinkSecurityError(BleakError, KmcError):
    """Pairing failed (wrong passkey, unauthenticated method) or the peer could not encrypt
    with the bond we hold for it (not the bonded strap, or it lost its keys)."""


# What BlueZ says (as bleak's BleakDBusError) for the same failures.
BLUEZ_SECURITY_ERRORS = (
    "org.bluez.Error.AuthenticationFailed",
    "org.bluez.Error.AuthenticationRejected",
    "org.bluez.Error.AuthenticationCanceled",
)


def is_security_failure(exc: BaseException) -> bool:
    return isinstance(exc, LinkSecurityError) or any(
        name in str(exc) for name in BLUEZ_SECURITY_ERRORS
    )
