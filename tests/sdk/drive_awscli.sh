#!/bin/sh
# The AWS CLI (Debian's awscli) against kmsd's HTTPS endpoint, as a user
# would; called by tests/test_http.c with the environment drive_boto3.py
# describes.  Exits non-zero on the first failure.
set -eu
AWS=/usr/bin/aws
export AWS_ACCESS_KEY_ID="$ADMIN_AKID" AWS_SECRET_ACCESS_KEY="$ADMIN_SECRET"
export AWS_DEFAULT_REGION=local AWS_PAGER="" AWS_MAX_ATTEMPTS=1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
kms() { "$AWS" kms --endpoint-url "$KMSD_ENDPOINT" --ca-bundle "$KMSD_CA" "$@"; }
fail() { echo "awscli: $*" >&2; exit 1; }
# expect ERROR-NAME command...: the CLI must fail naming that error.
expect() {
	want=$1; shift
	if out=$("$@" 2>&1); then
		fail "$* succeeded; wanted $want"
	fi
	case "$out" in
	*"($want)"*) ;;
	*) fail "$*: wanted $want, got: $out" ;;
	esac
}
ok() { echo "ok: $*"; }

key=$(kms create-key --description awscli --query KeyMetadata.KeyId --output text)
arn=$(kms describe-key --key-id "$key" --query KeyMetadata.Arn --output text)
[ "$arn" = "arn:aws:kms:local:000000000000:key/$key" ] || fail "ARN $arn"
ok "create-key, describe-key"

kms create-key --query KeyMetadata.KeyId --output text >/dev/null
tok=$(kms list-keys --max-items 1 --query NextToken --output text)
[ -n "$tok" ] && [ "$tok" != None ] || fail "no NextToken"
n=$(kms list-keys --page-size 1 --output json | jq '.Keys | length')
[ "$n" -ge 2 ] || fail "list-keys paging gave $n keys"
ok "list-keys paging ($n keys, a page at a time)"

printf 'hello' > "$WORK/pt"
kms encrypt --key-id "$key" --plaintext fileb://"$WORK/pt" \
	--encryption-context app=cli,stage=test \
	--query CiphertextBlob --output text | base64 -d > "$WORK/ct"
got=$(kms decrypt --ciphertext-blob fileb://"$WORK/ct" \
	--encryption-context app=cli,stage=test \
	--query Plaintext --output text | base64 -d)
[ "$got" = hello ] || fail "decrypt gave $got"
expect InvalidCiphertextException kms decrypt \
	--ciphertext-blob fileb://"$WORK/ct" --encryption-context app=other
ok "encrypt/decrypt with context"

len=$(kms generate-data-key --key-id "$key" --key-spec AES_256 \
	--query Plaintext --output text | base64 -d | wc -c)
[ "$len" -eq 32 ] || fail "data key of $len bytes"
len=$(kms generate-data-key --key-id "$key" --number-of-bytes 16 \
	--query Plaintext --output text | base64 -d | wc -c)
[ "$len" -eq 16 ] || fail "data key of $len bytes"
ok "generate-data-key (key spec, number of bytes)"

key2=$(kms create-key --query KeyMetadata.KeyId --output text)
dst=$(kms re-encrypt --ciphertext-blob fileb://"$WORK/ct" \
	--source-encryption-context app=cli,stage=test \
	--destination-key-id "$key2" --query KeyId --output text)
[ "$dst" = "arn:aws:kms:local:000000000000:key/$key2" ] || fail "re-encrypt $dst"
ok "re-encrypt"

len=$(kms generate-random --number-of-bytes 48 --query Plaintext \
	--output text | base64 -d | wc -c)
[ "$len" -eq 48 ] || fail "random of $len bytes"
ok "generate-random"

kms create-alias --alias-name alias/cli-app --target-key-id "$key"
kid=$(kms describe-key --key-id alias/cli-app --query KeyMetadata.KeyId --output text)
[ "$kid" = "$key" ] || fail "alias names $kid"
kms delete-alias --alias-name alias/cli-app
ok "aliases"

gid=$(kms create-grant --key-id "$key" --grantee-principal user:bob \
	--operations Encrypt --query GrantId --output text)
AWS_ACCESS_KEY_ID=$BOB_AKID AWS_SECRET_ACCESS_KEY=$BOB_SECRET \
	kms encrypt --key-id "$key" --plaintext fileb://"$WORK/pt" >/dev/null
kms revoke-grant --key-id "$key" --grant-id "$gid"
AWS_ACCESS_KEY_ID=$BOB_AKID AWS_SECRET_ACCESS_KEY=$BOB_SECRET \
	expect AccessDeniedException kms encrypt --key-id "$key" \
	--plaintext fileb://"$WORK/pt"
ok "grants, policy denial"

kms disable-key --key-id "$key"
expect DisabledException kms encrypt --key-id "$key" --plaintext fileb://"$WORK/pt"
kms enable-key --key-id "$key"
ok "disabled key"

expect MissingAuthenticationTokenException kms list-keys --no-sign-request
AWS_SECRET_ACCESS_KEY=not-the-secret expect InvalidSignatureException kms list-keys
AWS_ACCESS_KEY_ID=KMSDNOSUCHKEY0000000 expect UnrecognizedClientException kms list-keys
ok "SigV4 failures: Missing, InvalidSignature, Unrecognized"
echo "awscli: all passed"
