//! The L4 proxy engine of vipd. Knows nothing of VRRP.
