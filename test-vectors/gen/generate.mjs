// Generates ../objects.json: frozen DAG-CBOR test vectors for chum's codec,
// produced with the reference JavaScript IPLD implementation.
// Run: npm install && node generate.mjs
import { readFileSync, writeFileSync } from 'node:fs'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagJson from '@ipld/dag-json'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { blake3 } from '@noble/hashes/blake3.js'
import { sha256 } from '@noble/hashes/sha2.js'

const DAG_CBOR = 0x71
const RAW = 0x55
const BLAKE3 = 0x1e
const SHA2_256 = 0x12

const hex = (b) => Buffer.from(b).toString('hex')
const unhex = (h) => new Uint8Array(Buffer.from(h, 'hex'))
const utf8 = (s) => new TextEncoder().encode(s)
const same = (a, b) => hex(a) === hex(b)
const cidOf = (bytes, codec = DAG_CBOR) =>
  CID.createV1(codec, Digest.create(BLAKE3, blake3(bytes)))
const version = (pkg) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${pkg}/package.json`, import.meta.url))).version

// Links used by the vectors.
const linkDagCbor = cidOf(dagCbor.encode({}))
const linkRaw = cidOf(utf8('hello'), RAW)
const linkV0 = CID.createV0(Digest.create(SHA2_256, sha256(utf8('hello'))))

const bytesOf = (n) => Uint8Array.from({ length: n }, (_, i) => i & 0xff)
const nested = { a: [1, [2, [3, { b: [[], {}] }]]], c: { d: { e: { f: null } } } }

// [name, value]: value is encoded with @ipld/dag-cbor and @ipld/dag-json.
const valid = [
  ['empty-map', {}],
  ['empty-list', []],
  ['empty-text', ''],
  ['empty-key', { '': 1 }],
  ['nested-lists', [[], [[]], [[[1]]], [1, [2, [3, [4]]]]]],
  ['nested-maps-and-lists', nested],
  ['list-23-items', Array.from({ length: 23 }, (_, i) => i)],
  ['list-24-items', Array.from({ length: 24 }, (_, i) => i)],
  ['map-24-entries', Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`k${i}`, i]))],
  ...[0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1,
    2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n]
    .map((n) => [`int-${n}`, n]),
  ...[-1, -24, -25, -256, -257, -65536, -65537, -(2 ** 32), -(2 ** 32) - 1,
    -(2 ** 53 - 1), -(2n ** 53n), -(2n ** 63n), -(2n ** 64n)]
    .map((n) => [`int-neg-${-n}`, n]),
  ['float-0p5', 0.5],
  ['float-1p5', 1.5],
  ['float-neg-1p1', -1.1],
  ['float-1e300', 1e300],
  ['float-min-subnormal-5e-324', 5e-324],
  ['float-min-normal', 2.2250738585072014e-308],
  ['float-max-finite', Number.MAX_VALUE],
  ['float-neg-max-finite', -Number.MAX_VALUE],
  // JS numbers that are integral but not safe integers stay floats.
  ['float-integral-2p53', 2 ** 53],
  ['true', true],
  ['false', false],
  ['null', null],
  ['list-of-scalars', [true, false, null, 0, -1, 0.5, '', 'x']],
  ['text-ascii', 'hello world'],
  ['text-23-bytes', 'a'.repeat(23)],
  ['text-24-bytes', 'a'.repeat(24)],
  ['text-256-bytes', 'b'.repeat(256)],
  ['text-unicode', 'héllo wörld – Ωμέγα – 日本語 – Привет'],
  ['text-emoji', '😀👍🏽🇳🇱'],
  ['text-escapes-quote-backslash', 'say "hi" \\ path\\to\\file / slash'],
  ['text-control-chars', 'nul\u0000 bel\u0007 bs\b tab\t lf\n vt\u000b ff\f cr\r esc\u001b us\u001f del\u007f'],
  ['text-line-separators', 'ls\u2028 ps\u2029 bom\ufeff nbsp\u00a0'],
  ['map-unicode-keys', { z: 1, ab: 2, 'é': 3, '日本': 4, 'ü': 5, '😀': 6 }],
  ['map-key-order-length-first', { b: 1, aa: 2, aaa: 3, c: 4, ab: 5 }],
  ['map-key-order-prefixes', { abc: 1, ab: 2, a: 3, b: 4, ba: 5, '': 6 }],
  ['map-key-order-dollar', { zeta: 1, $type: 2, Z: 3, _x: 4 }],
  ['bytes-empty', new Uint8Array(0)],
  ['bytes-small', unhex('00010203fffefd')],
  ['bytes-24', bytesOf(24)],
  ['bytes-300', bytesOf(300)],
  ['link-dag-cbor-blake3', linkDagCbor],
  ['link-raw-blake3', linkRaw],
  ['link-cidv0-sha2-256', linkV0],
  ['links-in-map', { cbor: linkDagCbor, raw: linkRaw, v0: linkV0, list: [linkDagCbor, linkRaw] }],
  ['chum-message', { $type: 'Message', text: 'hello', needsAI: true, status: 'pending' }],
  ['chum-message-typical', {
    $type: 'Message',
    text: 'hello, can you summarise this thread?',
    needsAI: true,
    status: 'pending',
    createdAt: 1700000000000
  }],
  ['chum-message-full', {
    $type: 'Message',
    text: 'hello, can you summarise this thread?',
    needsAI: true,
    status: 'pending',
    createdAt: 1700000000000,
    thread: linkDagCbor,
    tags: ['ai', 'summary'],
    score: 0.75
  }]
]

// [name, hex, note]: values @ipld/dag-cbor cannot produce from JavaScript.
const handbuilt = [
  ['float-negative-zero-handbuilt', 'fb8000000000000000',
    'JS -0 encodes as integer 0x00; decoding these bytes gives -0, which re-encodes as 0x00'],
  ['float-positive-zero-handbuilt', 'fb0000000000000000',
    'JS 0 is always encoded as integer 0x00; decoding these bytes re-encodes as 0x00'],
  ['float-integral-2-handbuilt', 'fb4000000000000000',
    'JS 2.0 === 2 is encoded as integer 0x02; decoding these bytes re-encodes as 0x02'],
  ['map-with-float-negative-zero-handbuilt', 'a16178fb8000000000000000',
    'same as float-negative-zero-handbuilt, inside a map {"x": -0.0}']
]

// Invalid inputs for a strict DAG-CBOR decoder.
const cidBytes = linkDagCbor.bytes
const cidHead = (n) => (n < 24 ? hex([0x40 + n]) : hex([0x58, n]))
const invalid = [
  ['map-keys-bytewise-not-length-first', 'a262616101616202', 'map keys not in length-first order'],
  ['map-keys-same-length-unsorted', 'a2616201616102', 'map keys not sorted'],
  ['map-keys-unicode-unsorted', 'a262c3a901617a02', 'map keys not sorted (shorter key after longer)'],
  ['map-duplicate-keys', 'a2616101616102', 'duplicate map key'],
  ['map-duplicate-keys-nonadjacent', 'a3616101616202616103', 'duplicate map key'],
  ['uint-23-in-1-byte', '1817', 'integer head not shortest'],
  ['uint-1-in-2-bytes', '190001', 'integer head not shortest'],
  ['uint-255-in-2-bytes', '1900ff', 'integer head not shortest'],
  ['uint-1-in-4-bytes', '1a00000001', 'integer head not shortest'],
  ['uint-65535-in-4-bytes', '1a0000ffff', 'integer head not shortest'],
  ['uint-1-in-8-bytes', '1b0000000000000001', 'integer head not shortest'],
  ['uint-2p32-minus-1-in-8-bytes', '1b00000000ffffffff', 'integer head not shortest'],
  ['negint-minus-24-in-1-byte', '3817', 'integer head not shortest'],
  ['negint-minus-1-in-2-bytes', '390000', 'integer head not shortest'],
  ['negint-minus-1-in-4-bytes', '3a00000000', 'integer head not shortest'],
  ['negint-minus-1-in-8-bytes', '3b0000000000000000', 'integer head not shortest'],
  ['text-length-not-shortest', '780161', 'text length head not shortest'],
  ['text-length-2-bytes-not-shortest', '79000161', 'text length head not shortest'],
  ['bytes-length-not-shortest', '580100', 'bytes length head not shortest'],
  ['array-length-not-shortest', '980100', 'array length head not shortest'],
  ['array-length-4-bytes-not-shortest', '9a0000000100', 'array length head not shortest'],
  ['map-length-not-shortest', 'b801616100', 'map length head not shortest'],
  ['tag-42-head-not-shortest', 'd9002a' + cidHead(cidBytes.length + 1) + '00' + hex(cidBytes),
    'tag number head not shortest'],
  ['indefinite-bytes', '5f4100ff', 'indefinite-length bytes'],
  ['indefinite-text', '7f6161ff', 'indefinite-length text'],
  ['indefinite-array', '9f01ff', 'indefinite-length array'],
  ['indefinite-array-empty', '9fff', 'indefinite-length array'],
  ['indefinite-map', 'bf616101ff', 'indefinite-length map'],
  ['break-alone', 'ff', 'break without indefinite item'],
  ['break-in-definite-array', '8201ff', 'break inside definite-length array'],
  ['float16-one', 'f93c00', 'half-precision float'],
  ['float16-zero', 'f90000', 'half-precision float'],
  ['float32-1p5', 'fa3fc00000', 'single-precision float'],
  ['float64-nan', 'fb7ff8000000000000', 'NaN'],
  ['float64-nan-payload', 'fb7ff0000000000001', 'NaN'],
  ['float64-positive-infinity', 'fb7ff0000000000000', 'Infinity'],
  ['float64-negative-infinity', 'fbfff0000000000000', '-Infinity'],
  ['float16-nan', 'f97e00', 'half-precision float and NaN'],
  ['tag-0-datetime', 'c074323031332d30332d32315432303a30343a30305a', 'tag other than 42'],
  ['tag-1-epoch', 'c11a514b67b0', 'tag other than 42'],
  ['tag-2-bignum', 'c2420100', 'tag other than 42'],
  ['tag-43', 'd82b4100', 'tag other than 42'],
  ['tag-42-empty-bytes', 'd82a40', 'tag 42 with empty bytes'],
  ['tag-42-no-zero-prefix', 'd82a' + cidHead(cidBytes.length) + hex(cidBytes), 'tag 42 bytes missing 0x00 prefix'],
  ['tag-42-text', 'd82a' + hex(dagCbor.encode(linkDagCbor.toString())), 'tag 42 holding text not bytes'],
  ['tag-42-garbage-cid', 'd82a4500ffffffff', 'tag 42 with invalid CID bytes'],
  ['tag-42-truncated-digest', 'd82a' + cidHead(cidBytes.length) + '00' + hex(cidBytes.subarray(0, -1)),
    'tag 42 CID digest shorter than declared'],
  ['tag-42-without-content', 'd82a', 'tag with no content'],
  ['text-invalid-utf8', '62c328', 'invalid UTF-8 in text'],
  ['text-invalid-utf8-lone-continuation', '6180', 'invalid UTF-8 in text'],
  ['text-utf8-overlong', '62c0af', 'overlong UTF-8 in text'],
  ['text-utf8-surrogate', '63eda080', 'UTF-8 encoded surrogate in text'],
  ['map-key-invalid-utf8', 'a162c32801', 'invalid UTF-8 in map key'],
  ['trailing-bytes', '0000', 'trailing bytes after value'],
  ['trailing-bytes-after-map', 'a0ff', 'trailing bytes after value'],
  ['truncated-head', '1901', 'truncated integer head'],
  ['truncated-text', '636162', 'truncated text'],
  ['truncated-bytes', '5820010203', 'truncated bytes (3 of 32)'],
  ['bytes-length-exceeds-input', '5b7fffffffffffffff00', 'bytes length far beyond input'],
  ['truncated-array', '830102', 'truncated array (2 of 3 items)'],
  ['truncated-map', 'a16161', 'map missing value'],
  ['map-integer-key', 'a10102', 'non-text map key'],
  ['map-bytes-key', 'a1416101', 'non-text map key'],
  ['map-null-key', 'a1f601', 'non-text map key'],
  ['undefined', 'f7', 'undefined simple value'],
  ['undefined-in-list', '81f7', 'undefined simple value'],
  ['simple-value-16', 'f0', 'unassigned simple value'],
  ['simple-value-32-two-bytes', 'f820', 'simple value (one-byte extension)'],
  ['simple-false-two-bytes', 'f814', 'simple value in two-byte form'],
  ['reserved-ai-28-uint', '1c', 'reserved additional info 28'],
  ['reserved-ai-29-negint', '3d', 'reserved additional info 29'],
  ['reserved-ai-30-text', '7e', 'reserved additional info 30'],
  ['reserved-ai-31-uint', '1f', 'additional info 31 on integer'],
  ['empty-input', '', 'empty input']
]

function decodes (bytes) {
  try {
    dagCbor.decode(bytes)
    return true
  } catch {
    return false
  }
}

const failures = []
const check = (ok, msg) => { if (!ok) failures.push(msg) }

const validOut = valid.map(([name, value]) => {
  const bytes = dagCbor.encode(value)
  const json = dagJson.encode(value)
  check(same(dagCbor.encode(dagCbor.decode(bytes)), bytes), `${name}: dag-cbor round trip`)
  check(same(dagCbor.encode(dagJson.decode(json)), bytes), `${name}: dag-json -> dag-cbor`)
  check(same(dagJson.encode(dagCbor.decode(bytes)), json), `${name}: dag-cbor -> dag-json`)
  return { name, dag_json: new TextDecoder().decode(json), hex: hex(bytes), cid: cidOf(bytes).toString() }
})

for (const [name, h, note] of handbuilt) {
  const bytes = unhex(h)
  check(decodes(bytes), `${name}: handbuilt bytes rejected by @ipld/dag-cbor`)
  check(!same(dagCbor.encode(dagCbor.decode(bytes)), bytes), `${name}: JS can express it after all`)
  validOut.push({ name, dag_json: null, hex: h, cid: cidOf(bytes).toString(), handbuilt: true, note })
}

const invalidOut = invalid.map(([name, h, rule]) => {
  const entry = { name, hex: h, rule }
  if (decodes(unhex(h))) entry.js_accepts = true
  return entry
})

const names = [...validOut, ...invalidOut].map((v) => v.name)
check(new Set(names).size === names.length, 'duplicate vector names')
if (failures.length) {
  console.error(failures.join('\n'))
  process.exit(1)
}

const versions = Object.fromEntries(
  ['@ipld/dag-cbor', '@ipld/dag-json', 'multiformats', '@noble/hashes', 'cborg'].map((p) => [p, version(p)]))
const lenient = invalidOut.filter((v) => v.js_accepts).map((v) => v.name)

const out = {
  description: 'Strict DAG-CBOR test vectors. Each "valid" entry holds the DAG-CBOR bytes ("hex"), ' +
    'the DAG-JSON text exactly as @ipld/dag-json encodes the same value ("dag_json"), and the CIDv1 of the bytes ' +
    '(codec dag-cbor 0x71, multihash BLAKE3-256 0x1e, base32). Every non-handbuilt valid entry was checked to ' +
    'round-trip through @ipld/dag-cbor decode/encode to identical bytes, and DAG-JSON decode then DAG-CBOR encode ' +
    'gives the same bytes. Entries marked "handbuilt" (float -0.0, float 0.0, float 2.0) are floats that the JS ' +
    'libraries cannot produce, because JS numbers that are safe integers (including -0) are always encoded as CBOR ' +
    'integers; their bytes were written by hand, the CID computed with the same hasher, and "dag_json" is null. ' +
    'JS numbers that are integral but beyond 2^53-1 stay floats (see float-integral-2p53); integers from 2^53 up ' +
    'were built with BigInt. In "dag_json" map keys are in plain bytewise order (as @ipld/dag-json sorts them) and ' +
    'floats are written the JavaScript way (1e+300, 9007199254740992.0). Each "invalid" entry breaks one strict DAG-CBOR rule; "js_accepts": true marks inputs ' +
    `that @ipld/dag-cbor ${versions['@ipld/dag-cbor']} (cborg ${versions.cborg}) decodes anyway: ` +
    'it does not check map key order, accepts half and single floats, decodes undefined as null, and replaces ' +
    'invalid UTF-8 instead of rejecting it.',
  generator: 'test-vectors/gen/generate.mjs with ' +
    ['@ipld/dag-cbor', '@ipld/dag-json', 'multiformats', '@noble/hashes'].map((p) => `${p} ${versions[p]}`).join(', '),
  valid: validOut,
  invalid: invalidOut
}

writeFileSync(new URL('../objects.json', import.meta.url), JSON.stringify(out, null, 2) + '\n')
console.log(`${validOut.length} valid, ${invalidOut.length} invalid (${lenient.length} accepted by JS: ${lenient.join(', ')})`)
