// The AWS Encryption SDK for JavaScript streaming a generated stream, as
// the peer figure beside `kms-bench --op envelope` (README, Performance):
// encrypt (output discarded), then encrypt piped into decrypt, suite
// 0x0478, 4096-byte frames, a raw AES keyring (the one data key per
// message is not what is measured).
//
//   node esdk_bench.mjs MIB
import {
	AlgorithmSuiteIdentifier, CommitmentPolicy, RawAesKeyringNode,
	RawAesWrappingSuiteIdentifier, buildClient,
} from "@aws-crypto/client-node";
import { randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";

const mib = Number(process.argv[2] ?? 1024);
const keyring = new RawAesKeyringNode({
	keyName: "bench", keyNamespace: "bench", unencryptedMasterKey:
	    new Uint8Array(randomBytes(32)), wrappingSuite:
	    RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
});
const { encryptStream, decryptUnsignedMessageStream } = buildClient(
	CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
const chunk = Buffer.alloc(1 << 20, 7);

function source() {
	let left = mib;
	return new Readable({ read() { this.push(left-- > 0 ? chunk : null); } });
}
function sink(count) {
	return new Writable({ write(c, e, cb) { count.n += c.length; cb(); } });
}
const opts = { suiteId: AlgorithmSuiteIdentifier
    .ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY, frameLength: 4096 };

let t = process.hrtime.bigint(), c = { n: 0 };
await pipeline(source(), encryptStream(keyring, opts), sink(c));
const enc = Number(process.hrtime.bigint() - t) / 1e9;
t = process.hrtime.bigint();
const back = { n: 0 };
await pipeline(source(), encryptStream(keyring, opts),
    decryptUnsignedMessageStream(keyring), sink(back));
const rt = Number(process.hrtime.bigint() - t) / 1e9;
if (back.n !== mib << 20) {
	throw new Error(`decrypted ${back.n} bytes`);
}
console.log(JSON.stringify({ mib, encrypt_mib_s: mib / enc,
    round_trip_mib_s: mib / rt,
    peak_rss_kib: Math.round(process.resourceUsage().maxRSS) }));
