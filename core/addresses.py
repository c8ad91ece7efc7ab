"""A client's IP address as the service compares it."""

import ipaddress

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_of(text: str) -> IpAddress | None:
    """The address in `text`, None when it is not one. An IPv4 address in IPv6 form ("::ffff:203.0.113.7",
    how a dual-stack socket gives an IPv4 peer) is that IPv4 address: the same client, the same networks."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
