#!/bin/bash
# /etc/keepalived/check_haproxy.sh: restart HAProxy when it died; give up the VIP if it stays down
A=`ps -C haproxy --no-header | wc -l`
if [ $A -eq 0 ];then
    systemctl restart haproxy
    sleep 3
    if [ `ps -C haproxy --no-header | wc -l` -eq 0 ];then
        systemctl stop keepalived
    fi
fi
