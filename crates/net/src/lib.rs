//! Linux side effects for vipd: VRRP sockets, virtual IPs through rtnetlink, link and address monitors, announcements.
