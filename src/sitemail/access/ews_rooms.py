"""EWS GetRoomLists and GetRooms over the directory.

Exchange answers them from Active Directory: room lists are distribution
groups whose RecipientTypeDetails is RoomList, rooms the room mailboxes
among their members.  sitemail's directory has neither room mailboxes nor
distribution groups yet, so GetRoomLists answers an empty list, and
GetRooms for any address answers what Exchange answers for an address that
is not a room list: ErrorNameResolutionNoResults.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sitemail.access.ews_soap import SoapFault, m, sub, t

__all__ = ["get_room_lists", "get_rooms"]


def get_room_lists(body: ET.Element) -> ET.Element:
    del body  # GetRoomLists takes no arguments.
    response = ET.Element(m("GetRoomListsResponse"), ResponseClass="Success")
    sub(response, m("ResponseCode"), "NoError")
    sub(response, m("RoomLists"))
    return response


def get_rooms(body: ET.Element) -> ET.Element:
    address = (body.findtext(f"{m('RoomList')}/{t('EmailAddress')}") or "").strip()
    if not address:
        raise SoapFault("ErrorSchemaValidation", "GetRooms needs a RoomList with an EmailAddress.")
    response = ET.Element(m("GetRoomsResponse"), ResponseClass="Error")
    sub(response, m("MessageText"), "No results were found.")
    sub(response, m("ResponseCode"), "ErrorNameResolutionNoResults")
    sub(response, m("DescriptiveLinkKey"), "0")
    return response
