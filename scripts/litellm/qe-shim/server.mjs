// Offline stand-in for the Prisma query-engine *binary* used by prisma-client-py.
//
// prisma-client-py (the `prisma` PyPI package that LiteLLM uses) spawns
// `query-engine -p PORT ...` and talks to it over HTTP using Prisma's GraphQL
// protocol. The native binary is normally downloaded from Prisma's CDN, which
// is unreachable here. This server runs the *real* Prisma query engine compiled
// to WebAssembly (npm: @prisma/query-engine-wasm, same engine commit as the
// binary prisma-client-py expects) with the official Postgres driver adapter
// (npm: @prisma/adapter-pg + pg), and translates prisma-client-py's GraphQL
// requests into Prisma's JSON protocol (the only protocol the WASM build takes),
// using the DMMF from @prisma/prisma-schema-wasm for type-directed conversion.
//
// Listens on 127.0.0.1 only.
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { parse as parseGraphQL } from 'graphql';
import pg from 'pg';
import { PrismaPg } from '@prisma/adapter-pg';
import { bindAdapter } from '@prisma/driver-adapter-utils';
import * as qe from '@prisma/query-engine-wasm/postgresql/query_engine_bg.js';

const require = createRequire(import.meta.url);
const ENGINE_HASH = '393aa359c9ad4a4bb28630fb5613f9c281cde053';

// ---------- CLI ----------
const argv = process.argv.slice(2);
if (argv.includes('--version') || argv.includes('-V')) {
  process.stdout.write(`query-engine ${ENGINE_HASH}\n`);
  process.exit(0);
}
let port = 0;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '-p' || argv[i] === '--port') port = Number(argv[++i]);
  else if (argv[i].startsWith('--port=')) port = Number(argv[i].slice(7));
}
const DEBUG = !!process.env.QE_SHIM_DEBUG;
const dbg = (...a) => { if (DEBUG) console.error('[qe-shim]', ...a); };

// ---------- datamodel + DMMF ----------
const dmlPath = process.env.PRISMA_DML_PATH;
let datamodel = dmlPath ? fs.readFileSync(dmlPath, 'utf8') : null;
if (!datamodel && process.env.PRISMA_DML) datamodel = Buffer.from(process.env.PRISMA_DML, 'base64').toString('utf8');
if (!datamodel) { console.error('qe-shim: PRISMA_DML_PATH not set'); process.exit(1); }

const schemaWasm = require('@prisma/prisma-schema-wasm');
const dmmf = JSON.parse(schemaWasm.get_dmmf(JSON.stringify({ prismaSchema: datamodel })));
const inputTypes = new Map(dmmf.schema.inputObjectTypes.prisma.map((t) => [t.name, t]));
const outputTypes = { prisma: new Map(), model: new Map() };
for (const ns of Object.keys(dmmf.schema.outputObjectTypes)) {
  for (const t of dmmf.schema.outputObjectTypes[ns]) outputTypes[ns].set(t.name, t);
}
const enumValues = new Map();
for (const ns of Object.keys(dmmf.schema.enumTypes)) {
  for (const e of dmmf.schema.enumTypes[ns]) enumValues.set(e.name, new Set(e.values));
}
const rootFields = new Map();
for (const name of ['Query', 'Mutation']) {
  for (const f of outputTypes.prisma.get(name).fields) rootFields.set(f.name, f);
}
const opMap = new Map(); // graphql root field name -> {modelName, action}
for (const m of dmmf.mappings.modelOperations) {
  for (const [action, opName] of Object.entries(m)) {
    if (action !== 'model' && opName) opMap.set(opName, { modelName: m.model, action });
  }
}
for (const kind of ['read', 'write']) {
  for (const opName of dmmf.mappings.otherOperations[kind]) opMap.set(opName, { action: opName });
}
const RAW_ACTIONS = new Set(['queryRaw', 'executeRaw']);

// ---------- GraphQL -> JSON protocol ----------
const scalarOf = (cands, name) => cands.some((c) => c.location === 'scalar' && c.type === name);

function convValue(node, cands) {
  cands = cands || [];
  switch (node.kind) {
    case 'NullValue':
      return null;
    case 'BooleanValue':
      return node.value;
    case 'EnumValue':
      return node.value;
    case 'IntValue': {
      const n = Number(node.value);
      if (!Number.isSafeInteger(n) && scalarOf(cands, 'BigInt')) return { $type: 'BigInt', value: node.value };
      return n;
    }
    case 'FloatValue':
      return Number(node.value);
    case 'StringValue': {
      const s = node.value;
      const enumCands = cands.filter((c) => c.location === 'enumTypes');
      if (scalarOf(cands, 'Json')) {
        for (const e of enumCands) if (enumValues.get(e.type)?.has(s)) return { $type: 'Enum', value: s };
        return { $type: 'Json', value: s };
      }
      if (scalarOf(cands, 'String')) return s;
      if (scalarOf(cands, 'BigInt')) return { $type: 'BigInt', value: s };
      if (scalarOf(cands, 'Decimal')) return { $type: 'Decimal', value: s };
      if (scalarOf(cands, 'Bytes')) return { $type: 'Bytes', value: s };
      if (scalarOf(cands, 'DateTime')) return { $type: 'DateTime', value: s };
      return s;
    }
    case 'ListValue': {
      const listCands = cands.filter((c) => c.isList).map((c) => ({ ...c, isList: false }));
      const elemCands = listCands.length ? listCands : cands;
      return node.values.map((v) => convValue(v, elemCands));
    }
    case 'ObjectValue': {
      const types = cands.filter((c) => c.location === 'inputObjectTypes').map((c) => inputTypes.get(c.type)).filter(Boolean);
      const out = {};
      for (const f of node.fields) {
        const fieldCands = [];
        for (const t of types) {
          const def = t.fields.find((x) => x.name === f.name.value);
          if (def) fieldCands.push(...def.inputTypes);
        }
        out[f.name.value] = convValue(f.value, fieldCands);
      }
      return out;
    }
    default:
      throw new Error(`qe-shim: unsupported GraphQL value kind ${node.kind}`);
  }
}

function convArgs(astArgs, argDefs, raw) {
  const out = {};
  for (const a of astArgs || []) {
    const name = a.name.value;
    if (raw) {
      // raw queries: `query` is SQL text and `parameters` a JSON-encoded string; pass both through as-is
      out[name] = convValue(a.value, [{ location: 'scalar', type: 'String', isList: false }]);
      continue;
    }
    const def = (argDefs || []).find((d) => d.name === name);
    out[name] = convValue(a.value, def ? def.inputTypes : []);
  }
  return out;
}

function convSelection(selSet, outRef) {
  const sel = {};
  if (!selSet) return sel;
  const outType = outRef && outRef.location === 'outputObjectTypes' ? outputTypes[outRef.namespace]?.get(outRef.type) : null;
  for (const s of selSet.selections) {
    if (s.kind !== 'Field') throw new Error(`qe-shim: unsupported selection ${s.kind}`);
    const name = s.name.value;
    const def = outType?.fields.find((f) => f.name === name);
    if (!s.selectionSet && !(s.arguments && s.arguments.length)) {
      sel[name] = true;
      continue;
    }
    const nested = { selection: s.selectionSet ? convSelection(s.selectionSet, def?.outputType) : { $scalars: true } };
    if (s.arguments && s.arguments.length) nested.arguments = convArgs(s.arguments, def?.args, false);
    sel[name] = nested;
  }
  return sel;
}

function translate(gqlText) {
  const doc = parseGraphQL(gqlText);
  const opDef = doc.definitions[0];
  const field = opDef.selectionSet.selections[0];
  const opName = field.name.value;
  const alias = field.alias ? field.alias.value : opName;
  const op = opMap.get(opName);
  if (!op) throw new Error(`qe-shim: unknown operation ${opName}`);
  const rootDef = rootFields.get(opName);
  const raw = RAW_ACTIONS.has(op.action);
  const q = { action: op.action, query: { arguments: convArgs(field.arguments, rootDef?.args, raw), selection: {} } };
  if (op.modelName) q.modelName = op.modelName;
  if (field.selectionSet) q.query.selection = convSelection(field.selectionSet, rootDef?.outputType);
  else if (!raw && rootDef?.outputType.location === 'outputObjectTypes') q.query.selection = { $scalars: true };
  return { json: q, alias, opName };
}

// ---------- JSON protocol result -> GraphQL-protocol shaped result ----------
function untype(v) {
  if (Array.isArray(v)) return v.map(untype);
  if (v && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 2 && '$type' in v && 'value' in v) {
      if (v.$type === 'BigInt') {
        const n = Number(v.value);
        return Number.isSafeInteger(n) ? n : v.value;
      }
      return v.value; // DateTime (ISO string), Json (string), Decimal (string), Bytes (base64)
    }
    const o = {};
    for (const k of keys) o[k] = untype(v[k]);
    return o;
  }
  return v;
}

// prisma-client-py <= 0.11 (engine 5.4) expects queryRaw rows as
// [{col: {prisma__type, prisma__value}}]; newer clients take {columns, types, rows}.
function detectLegacyRaw() {
  if (process.env.QE_SHIM_RAW_FORMAT) return process.env.QE_SHIM_RAW_FORMAT === 'legacy';
  try {
    const src = fs.readFileSync(new URL('_raw_query.py', `file://${fs.realpathSync(dmlPath)}`), 'utf8');
    return src.includes('prisma__value');
  } catch (e) {
    return false;
  }
}
const LEGACY_RAW = dmlPath ? detectLegacyRaw() : false;

function legacyRaw(r) {
  if (!r || !Array.isArray(r.columns) || !Array.isArray(r.rows)) return r;
  return r.rows.map((row) => {
    const o = {};
    r.columns.forEach((col, i) => {
      const t = r.types[i];
      const v = row[i];
      if (v === null || v === undefined) o[col] = { prisma__type: 'null', prisma__value: null };
      else if (t.endsWith('-array')) {
        const base = t.slice(0, -6);
        o[col] = { prisma__type: 'array', prisma__value: v.map((x) => ({ prisma__type: x === null ? 'null' : base, prisma__value: x })) };
      } else o[col] = { prisma__type: t, prisma__value: v };
    });
    return o;
  });
}

function reshape(resultText, alias, opName) {
  const r = JSON.parse(resultText);
  if (r.data && opName in r.data) {
    let v = r.data[opName];
    if (opName === 'queryRaw') v = LEGACY_RAW ? legacyRaw(v) : v;
    else v = untype(v);
    return { ...r, data: { [alias]: v } };
  }
  return r;
}

// ---------- database + engine ----------
function databaseUrl() {
  if (process.env.OVERWRITE_DATASOURCES) {
    try {
      const ds = JSON.parse(process.env.OVERWRITE_DATASOURCES);
      if (Array.isArray(ds) && ds[0]?.url) return ds[0].url;
    } catch (e) { /* ignore */ }
  }
  const m = datamodel.match(/datasource\s+\w+\s*\{[^}]*?url\s*=\s*(env\(\s*"([^"]+)"\s*\)|"([^"]+)")/s);
  if (m) return m[2] ? process.env[m[2]] : m[3];
  return process.env.DATABASE_URL;
}

function poolConfig(urlString) {
  const u = new URL(urlString);
  const params = u.searchParams;
  const max = Number(params.get('connection_limit')) || 10;
  // Prisma-only URL parameters that node-postgres does not understand
  for (const k of ['connection_limit', 'pool_timeout', 'socket_timeout', 'connect_timeout', 'pgbouncer', 'schema',
    'statement_cache_size', 'sslaccept', 'max_connection_lifetime', 'max_idle_connection_lifetime']) params.delete(k);
  return { connectionString: u.toString(), max };
}

const wasmBytes = fs.readFileSync(require.resolve('@prisma/query-engine-wasm/postgresql/query_engine_bg.wasm'));
const instance = new WebAssembly.Instance(new WebAssembly.Module(wasmBytes), { './query_engine_bg.js': qe });
qe.__wbg_set_wasm(instance.exports);

const url = databaseUrl();
if (!url) { console.error('qe-shim: no database URL'); process.exit(1); }
const pool = new pg.Pool(poolConfig(url));

// @prisma/adapter-pg 5.17 rejects raw-query columns whose Postgres type it has no mapping for
// (e.g. `name`, `name[]`, `interval`, `regclass`), where the native engine falls back to text.
// Rewrite such columns to text / text[] before the adapter sees them.
const ADAPTER_OIDS = new Set([21, 23, 20, 700, 701, 16, 1082, 1083, 1266, 1114, 1184, 1700, 790, 114, 3802, 2950, 26,
  1042, 25, 1043, 1560, 1562, 869, 650, 142, 17, 1005, 1007, 1021, 1022, 1231, 791, 1000, 1002, 1014, 1009, 1015, 1563,
  1561, 1041, 651, 143, 1182, 1183, 1115, 199, 3807, 1001, 2951, 1016, 1028]);
const KNOWN_ARRAY_OIDS = new Set([1003, 1187, 1185, 1040, 775, 1034, 2201, 2210, 2211, 4090, 1011, 1012, 1013, 1270, 3643, 1270]);
const parseTextArray = pg.types.getTypeParser(1009, 'text');
pg.types.setTypeParser(1186, (v) => v); // keep interval as Postgres prints it, like the native engine
const toText = (v) => {
  if (v === null || v === undefined || typeof v === 'string') return v;
  if (v instanceof Date) return v.toISOString();
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (typeof v.toPostgres === 'function') return v.toPostgres();
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
};
function fixResult(res) {
  if (!res || !Array.isArray(res.fields) || !Array.isArray(res.rows)) return res;
  res.fields.forEach((f, i) => {
    if (ADAPTER_OIDS.has(f.dataTypeID) || f.dataTypeID >= 10000) return;
    const isArray = KNOWN_ARRAY_OIDS.has(f.dataTypeID) || res.rows.some((r) => Array.isArray(r[i]));
    for (const r of res.rows) {
      let v = r[i];
      if (v === null || v === undefined) continue;
      if (isArray) {
        if (typeof v === 'string') v = parseTextArray(v);
        r[i] = v.map(toText);
      } else r[i] = toText(v);
    }
    f.dataTypeID = isArray ? 1009 : 25;
  });
  return res;
}
const clientQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function patchedQuery(...args) {
  const last = args[args.length - 1];
  if (typeof last === 'function') {
    args[args.length - 1] = (err, res) => last(err, err ? res : fixResult(res));
    return clientQuery.apply(this, args);
  }
  const out = clientQuery.apply(this, args);
  return out && typeof out.then === 'function' ? out.then(fixResult) : out;
};
pool.on('error', (e) => console.error('qe-shim: pg pool error', e.message));
const adapter = bindAdapter(new PrismaPg(pool));
const logLevel = (process.env.RUST_LOG || 'error').split(',')[0];
const engine = new qe.QueryEngine({ datamodel, logLevel, logQueries: !!process.env.LOG_QUERIES }, (line) => {
  if (DEBUG) console.error('[qe-shim engine]', line);
}, adapter);
await engine.connect('{}');

function engineError(message) {
  return { errors: [{ error: message, user_facing_error: { is_panic: false, message, meta: null, error_code: null } }] };
}

async function handleQuery(body, txId) {
  const req = JSON.parse(body);
  if (Array.isArray(req.batch)) {
    const items = req.batch.map((b) => translate(b.query));
    const jsonReq = { batch: items.map((i) => i.json) };
    if (req.transaction) jsonReq.transaction = typeof req.transaction === 'object' ? req.transaction : {};
    dbg('batch', JSON.stringify(jsonReq));
    const res = JSON.parse(await engine.query(JSON.stringify(jsonReq), '{}', txId));
    if (Array.isArray(res.batchResult)) {
      res.batchResult = res.batchResult.map((r, i) => (r.data && items[i].opName in r.data
        ? { ...r, data: { [items[i].alias]: untype(r.data[items[i].opName]) } } : r));
    }
    return res;
  }
  const { json, alias, opName } = translate(req.query);
  dbg('query', JSON.stringify(json));
  const text = await engine.query(JSON.stringify(json), '{}', txId);
  dbg('result', text.slice(0, 2000));
  return reshape(text, alias, opName);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const server = http.createServer(async (req, res) => {
  const send = (status, obj) => {
    const s = typeof obj === 'string' ? obj : JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(s);
  };
  try {
    const path = req.url.split('?')[0];
    const body = await readBody(req);
    if (req.method === 'GET' && path === '/status') return send(200, { status: 'ok' });
    if (req.method === 'GET' && path === '/metrics') {
      return req.url.includes('format=prometheus') ? send(200, '') : send(200, { counters: [], gauges: [], histograms: [] });
    }
    if (req.method === 'POST' && path === '/') {
      const txId = req.headers['x-transaction-id'] || undefined;
      try {
        return send(200, await handleQuery(body, txId));
      } catch (e) {
        dbg('query failed', e && e.stack);
        return send(200, engineError(String(e && e.message ? e.message : e)));
      }
    }
    if (req.method === 'POST' && path === '/transaction/start') {
      const r = await engine.startTransaction(body || '{}', '{}');
      return send(200, r);
    }
    const m = path.match(/^\/transaction\/([^/]+)\/(commit|rollback)$/);
    if (req.method === 'POST' && m) {
      const r = m[2] === 'commit' ? await engine.commitTransaction(m[1], '{}') : await engine.rollbackTransaction(m[1], '{}');
      return send(200, r);
    }
    return send(404, engineError(`qe-shim: no route ${req.method} ${path}`));
  } catch (e) {
    return send(500, engineError(String(e && e.message ? e.message : e)));
  }
});

async function shutdown() {
  server.close();
  try { await engine.disconnect('{}'); } catch (e) { /* ignore */ }
  try { await pool.end(); } catch (e) { /* ignore */ }
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
// exit if the parent (prisma-client-py) goes away
const parentPid = process.ppid;
setInterval(() => { try { process.kill(parentPid, 0); } catch (e) { shutdown(); } }, 2000).unref();

server.listen(port, '127.0.0.1', () => dbg(`listening on 127.0.0.1:${server.address().port}`));
