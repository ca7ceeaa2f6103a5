# SPDX-License-Identifier: ISC
# debian/rules makes /etc/route-host/route-host.conf from
# etc/route-host.conf.example with this: Debian's paths, every setting
# commented out, and helpers run as the package's own system user.
s|^# Install as \$(sysconfdir)/route-host\.conf (/usr/local/etc/route-host\.conf$|# This is /etc/route-host/route-host.conf, from the route-host package.|
s|^# with the default prefix)\.  Without|# Without|
s|\$(runstatedir)/route-host/route-host\.sock (/run/route-host/route-host\.sock$|/run/route-host/route-host.sock,|
s|^# when built with --runstatedir=/run), in|# in|
s|/usr/local/etc/route-host/plugins|/etc/route-host/plugins|g
s|/usr/local/etc/route-host\.conf|/etc/route-host/route-host.conf|g
s|\$(sysconfdir)/route-host/plugins|/etc/route-host/plugins|g
/^[^#]/s/^/#/
/^#helper-user nobody$/{
i\
# Debian: helpers run as _route-host, a system user of their own; nobody\
# is shared with other daemons, whose processes a helper could signal.
s/^#helper-user nobody$/helper-user _route-host/
}
