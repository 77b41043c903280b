#!/bin/sh
# Throwaway TLS material for tests/test_http.c, in DIR: a self-signed
# server certificate for 127.0.0.1 (server.crt, server.key), a client CA
# (ca.crt) and a client certificate it signed, subject CN=alice
# (client.crt, client.key).  Valid for a day; keys mode 0600.
set -eu
d=$1
umask 077
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout "$d/server.key" -out "$d/server.crt" -days 1 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-addext basicConstraints=critical,CA:FALSE 2>/dev/null
openssl req -x509 $ec -keyout "$d/ca.key" -out "$d/ca.crt" -days 1 \
	-subj /CN=kmsd-test-client-ca -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req $ec -keyout "$d/client.key" -out "$d/client.csr" \
	-subj /CN=alice 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' > "$d/client.ext"
openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
	-CAcreateserial -out "$d/client.crt" -days 1 \
	-extfile "$d/client.ext" 2>/dev/null
chmod 644 "$d/server.crt" "$d/ca.crt" "$d/client.crt"
