"""One router per area of the operator API."""
