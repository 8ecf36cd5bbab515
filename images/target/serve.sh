#!/bin/sh
# (/bin/sh is busybox in the image.) The target's known payload, on TCP 80 (busybox httpd, both
# families) and UDP 53 (socat answers each datagram; IPv6 by a second socat, which simply exits
# in a container without IPv6).
/bin/busybox httpd -p 80 -h /www
/bin/socat -T2 UDP6-RECVFROM:53,ipv6only=1,fork EXEC:"/bin/busybox cat /www/index.html" &
exec /bin/socat -T2 UDP-RECVFROM:53,fork EXEC:"/bin/busybox cat /www/index.html"
