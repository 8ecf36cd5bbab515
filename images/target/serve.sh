#!/bin/sh
# (/bin/sh is busybox in the image.) The target's known payload, on TCP 80 (busybox httpd) and UDP 53 (socat answers each datagram).
/bin/busybox httpd -p 80 -h /www
exec /bin/socat -T2 UDP-RECVFROM:53,fork EXEC:"/bin/busybox cat /www/index.html"
