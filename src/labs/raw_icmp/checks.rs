//! Checks for 04-raw-icmp (to come).
