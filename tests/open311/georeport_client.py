"""Drives civic-rules' Open311 endpoint with the third-party `georeport` client (PyPI).

Usage: python3 georeport_client.py ROOT_ADDRESS REQUEST_ID
Exits non-zero (with the failed check) if anything does not match.
"""
import sys

from georeport import GeoReport

root, request_id = sys.argv[1], sys.argv[2]
for fmt in ("json", "xml"):
    client = GeoReport(root, output_format=fmt)
    services = client.get_service_list()
    codes = {s["service_code"] for s in services}
    assert len(services) == 23 and "wage-arrears" in codes, (fmt, services)
    definition = client.get_service_definition("wage-arrears")
    attributes = definition["attributes"]
    if fmt == "xml":
        attributes = attributes["attribute"]
    assert attributes[0]["code"] == "dispute_amount", (fmt, definition)
    requests_ = client.get_service_requests(service_code="noise", status="open")
    if isinstance(requests_, dict):
        requests_ = [requests_]
    assert any(r["service_request_id"] == request_id for r in requests_), (fmt, requests_)
    one = client.get_service_request(request_id)
    assert one["status"] == "open" and one["service_code"] == "noise", (fmt, one)
    assert one["requested_datetime"].endswith("+08:00"), (fmt, one)
    print(f"{fmt}: {len(services)} services, request {request_id} {one['status']} at {one['agency_responsible']}")
print("georeport client: all checks passed")
