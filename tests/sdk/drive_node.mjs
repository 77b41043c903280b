// The AWS SDK for JavaScript v3 (@aws-sdk/client-kms) against kmsd's
// HTTPS endpoint, as a user would; called by tests/test_http.c with the
// environment drive_boto3.py describes (NODE_EXTRA_CA_CERTS trusts the
// server's certificate).  Exits non-zero on the first failure.
import {
	KMSClient, CreateKeyCommand, DescribeKeyCommand, ListKeysCommand,
	EncryptCommand, DecryptCommand, GenerateDataKeyCommand,
	GenerateDataKeyWithoutPlaintextCommand, ReEncryptCommand,
	GenerateRandomCommand, CreateAliasCommand, DeleteAliasCommand,
	ListAliasesCommand, CreateGrantCommand, RevokeGrantCommand,
	DisableKeyCommand, EnableKeyCommand, paginateListKeys,
} from "@aws-sdk/client-kms";
import assert from "node:assert/strict";

const E = process.env;
const ARN = "arn:aws:kms:local:000000000000:";

function client(akid, secret, extra = {}) {
	return new KMSClient({
		endpoint: E.KMSD_ENDPOINT, region: "local", maxAttempts: 1,
		credentials: { accessKeyId: akid, secretAccessKey: secret },
		...extra,
	});
}

async function expect(name, p) {
	try {
		await p;
	} catch (e) {
		assert.equal(e.name, name, `wanted ${name}, got ${e.name}: ${e.message}`);
		assert.match(e.$metadata.requestId ?? "", /^[0-9a-f-]{36}$/);
		return e;
	}
	throw new Error(`no ${name}`);
}

const ok = (what) => console.log("ok:", what);
const admin = client(E.ADMIN_AKID, E.ADMIN_SECRET);
const bob = client(E.BOB_AKID, E.BOB_SECRET);
const te = new TextEncoder(), td = new TextDecoder();

const k = (await admin.send(new CreateKeyCommand({ Description: "node" }))).KeyMetadata;
assert.equal(k.Arn, ARN + "key/" + k.KeyId);
const d = (await admin.send(new DescribeKeyCommand({ KeyId: k.Arn }))).KeyMetadata;
assert.equal(d.KeyId, k.KeyId);
ok("CreateKey, DescribeKey");

await admin.send(new CreateKeyCommand({}));
const ids = [];
let pages = 0;
for await (const page of paginateListKeys({ client: admin, pageSize: 1 }, {})) {
	pages++;
	ids.push(...page.Keys.map((x) => x.KeyId));
}
assert.ok(ids.includes(k.KeyId) && pages === ids.length && pages >= 2);
assert.equal(new Set(ids).size, ids.length);
ok(`ListKeys paging: ${ids.length} keys in ${pages} pages`);

const ctx = { app: "node", stage: "test" };
const ct = await admin.send(new EncryptCommand({ KeyId: k.KeyId,
	Plaintext: te.encode("hello"), EncryptionContext: ctx }));
assert.equal(ct.KeyId, k.Arn);
const pt = await admin.send(new DecryptCommand({
	CiphertextBlob: ct.CiphertextBlob, EncryptionContext: ctx }));
assert.equal(td.decode(pt.Plaintext), "hello");
assert.equal(pt.KeyId, k.Arn);
await expect("InvalidCiphertextException", admin.send(new DecryptCommand({
	CiphertextBlob: ct.CiphertextBlob, EncryptionContext: { app: "other" } })));
ok("Encrypt/Decrypt with context");

const dk = await admin.send(new GenerateDataKeyCommand({ KeyId: k.KeyId,
	KeySpec: "AES_256", EncryptionContext: ctx }));
assert.equal(dk.Plaintext.length, 32);
const back = await admin.send(new DecryptCommand({
	CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ctx }));
assert.deepEqual(Buffer.from(back.Plaintext), Buffer.from(dk.Plaintext));
const dk2 = await admin.send(new GenerateDataKeyCommand({ KeyId: k.KeyId,
	NumberOfBytes: 24 }));
assert.equal(dk2.Plaintext.length, 24);
const nk = await admin.send(new GenerateDataKeyWithoutPlaintextCommand({
	KeyId: k.KeyId, KeySpec: "AES_128" }));
assert.equal(nk.Plaintext, undefined);
ok("GenerateDataKey (KeySpec, NumberOfBytes, WithoutPlaintext)");

const k2 = (await admin.send(new CreateKeyCommand({}))).KeyMetadata;
const re = await admin.send(new ReEncryptCommand({
	CiphertextBlob: ct.CiphertextBlob, SourceEncryptionContext: ctx,
	DestinationKeyId: k2.KeyId }));
assert.equal(re.KeyId, k2.Arn);
assert.equal(re.SourceKeyId, k.Arn);
ok("ReEncrypt");

const rnd = await admin.send(new GenerateRandomCommand({ NumberOfBytes: 32 }));
assert.equal(rnd.Plaintext.length, 32);
ok("GenerateRandom");

await admin.send(new CreateAliasCommand({ AliasName: "alias/node-app",
	TargetKeyId: k.KeyId }));
const al = (await admin.send(new ListAliasesCommand({}))).Aliases
	.find((a) => a.AliasName === "alias/node-app");
assert.equal(al.AliasArn, ARN + "alias/node-app");
assert.equal((await admin.send(new EncryptCommand({ KeyId: al.AliasArn,
	Plaintext: te.encode("x") }))).KeyId, k.Arn);
await admin.send(new DeleteAliasCommand({ AliasName: "alias/node-app" }));
await expect("NotFoundException", admin.send(new DescribeKeyCommand({
	KeyId: "alias/node-app" })));
ok("aliases");

await expect("AccessDeniedException", bob.send(new EncryptCommand({
	KeyId: k.KeyId, Plaintext: te.encode("x") })));
const g = await admin.send(new CreateGrantCommand({ KeyId: k.KeyId,
	GranteePrincipal: "user:bob", Operations: ["Encrypt"] }));
await bob.send(new EncryptCommand({ KeyId: k.KeyId, Plaintext: te.encode("x") }));
await admin.send(new RevokeGrantCommand({ KeyId: k.KeyId, GrantId: g.GrantId }));
await expect("AccessDeniedException", bob.send(new EncryptCommand({
	KeyId: k.KeyId, Plaintext: te.encode("x") })));
ok("policy denial, grants");

await admin.send(new DisableKeyCommand({ KeyId: k.KeyId }));
await expect("DisabledException", admin.send(new EncryptCommand({
	KeyId: k.KeyId, Plaintext: te.encode("x") })));
await admin.send(new EnableKeyCommand({ KeyId: k.KeyId }));
ok("disabled key");

// SigV4 failures.  A middleware after signing takes the signature off or
// cuts it; a clock ten minutes slow signs an expired request.
function tamper(c, fn) {
	c.middlewareStack.add((next) => async (args) => {
		fn(args.request.headers);
		return next(args);
	}, { step: "deserialize", name: "tamper" });
	return c;
}
await expect("MissingAuthenticationTokenException", tamper(client(
	E.ADMIN_AKID, E.ADMIN_SECRET), (h) => { delete h.authorization; })
	.send(new ListKeysCommand({})));
await expect("IncompleteSignatureException", tamper(client(
	E.ADMIN_AKID, E.ADMIN_SECRET), (h) => {
		h.authorization = h.authorization.split(",")[0];
	}).send(new ListKeysCommand({})));
await expect("UnrecognizedClientException", client("KMSDNOSUCHKEY0000000",
	"x").send(new ListKeysCommand({})));
await expect("InvalidSignatureException", client(E.ADMIN_AKID,
	"not-the-secret").send(new ListKeysCommand({})));
const late = await expect("InvalidSignatureException", client(E.ADMIN_AKID,
	E.ADMIN_SECRET, { systemClockOffset: -10 * 60 * 1000 })
	.send(new ListKeysCommand({})));
assert.match(late.message, /Signature expired/);
ok("SigV4 failures");

// The IPC ciphertext decrypts here too.
const ipc = await admin.send(new DecryptCommand({
	CiphertextBlob: Buffer.from(E.IPC_CT, "base64"),
	EncryptionContext: { via: "ipc" } }));
assert.equal(td.decode(ipc.Plaintext), "from-ipc");
ok("IPC ciphertext decrypted");
console.log("node: all passed");
