// A SPDY/3.1 client of berth's streaming server built on the npm package spdy-transport (an
// implementation berth did not write): remotecommand (exec/attach) and port-forward.
// Usage: node spdy_client.js URL JSON-OPTIONS; prints one JSON object.
'use strict'
const fs = require('fs')
const net = require('net')
const tls = require('tls')
const crypto = require('crypto')
const transport = require('spdy-transport')

const url = new URL(process.argv[2])
const o = JSON.parse(process.argv[3] || '{}')
const proto = o.protocol || (o.portforward ? 'portforward.k8s.io' : 'v4.channel.k8s.io')

function fail (msg) {
  console.log(JSON.stringify({ fatal: String(msg) }))
  process.exit(2)
}
setTimeout(() => fail('timed out'), (o.timeout || 120) * 1000).unref()

// https: TLS trusting the certificate in o.cafile (and checking the host against it).
const onConnect = () => {
  sock.write(`POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n` +
    `Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${proto}\r\n\r\n`)
}
const sock = url.protocol === 'https:'
  ? tls.connect({ host: url.hostname, port: +url.port, ca: fs.readFileSync(o.cafile) }, onConnect)
  : net.connect(+url.port, url.hostname, onConnect)
let head = Buffer.alloc(0)
function onHead (chunk) {
  head = Buffer.concat([head, chunk])
  const end = head.indexOf('\r\n\r\n')
  if (end < 0) return
  sock.removeListener('data', onHead)
  const status = head.slice(0, end).toString()
  if (!/^HTTP\/1\.1 101/.test(status)) {
    console.log(JSON.stringify({ http: status.split('\r\n')[0], body: head.slice(end + 4).toString() }))
    process.exit(0)
  }
  const rest = head.slice(end + 4)
  if (rest.length) sock.unshift(rest)
  run(/X-Stream-Protocol-Version: (\S+)/i.exec(status))
}
sock.on('data', onHead)
sock.on('error', (e) => fail(e))

function run (negotiated) {
  const conn = transport.connection.create(sock, { protocol: 'spdy', isServer: false })
  conn.start(3.1)
  conn.on('error', () => {})
  const open = (headers) => new Promise((resolve, reject) => {
    const s = conn.request({ method: 'POST', path: url.pathname, host: url.host, headers }, (err) => err && reject(err))
    s.on('error', () => {})
    s.send()
    resolve(s)
  })
  const collect = (s) => new Promise((resolve) => {
    const chunks = []
    s.on('data', (d) => chunks.push(d))
    s.on('end', () => resolve(Buffer.concat(chunks)))
    s.on('close', () => resolve(Buffer.concat(chunks)))
    s.resume()
  })
  if (o.portforward) return portForward(open, collect)
  return command(open, collect, negotiated ? negotiated[1] : '')
}

async function command (open, collect, negotiated) {
  const error = await open({ streamtype: 'error' })
  const stdin = o.stdin !== undefined ? await open({ streamtype: 'stdin' }) : null
  const stdout = o.stdout !== false ? await open({ streamtype: 'stdout' }) : null
  const stderr = o.stderr ? await open({ streamtype: 'stderr' }) : null
  const resize = o.tty ? await open({ streamtype: 'resize' }) : null
  error.end()
  const outs = [stdout ? collect(stdout) : Promise.resolve(Buffer.alloc(0)),
    stderr ? collect(stderr) : Promise.resolve(Buffer.alloc(0)), collect(error)]
  if (resize) {
    if (o.resize) resize.write(JSON.stringify({ Width: o.resize[0], Height: o.resize[1] }))
  }
  if (stdin) {
    if (o.stdin.length) stdin.write(o.stdin)
    if (o.expect !== undefined) {
      // stdin stays open until stdout holds the expected text
      let seen = ''
      stdout.on('data', (d) => {
        seen += d.toString()
        if (seen.includes(o.expect) && !stdin.ended) {
          stdin.ended = true
          stdin.end()
        }
      })
    } else if (!o.keepStdin) {
      stdin.end()
    }
  }
  if (o.lines) {
    // go away once stdout holds this many lines
    let seen = ''
    stdout.on('data', (d) => {
      seen += d.toString()
      if (seen.split('\n').length > o.lines) {
        console.log(JSON.stringify({ protocol: negotiated, stdout: seen }))
        process.exit(0)
      }
    })
  }
  const [out, err, status] = await Promise.all(outs)
  console.log(JSON.stringify({
    protocol: negotiated,
    stdout_len: out.length,
    stdout_sha256: crypto.createHash('sha256').update(out).digest('hex'),
    stdout: out.slice(0, 4096).toString(),
    stderr: err.toString(),
    error: status.toString()
  }))
  process.exit(0)
}

async function portForward (open, collect) {
  const results = await Promise.all(o.ports.map(async (port, i) => {
    const error = await open({ streamtype: 'error', port: String(port), requestid: String(i) })
    const data = await open({ streamtype: 'data', port: String(port), requestid: String(i) })
    error.end()
    const got = Promise.all([collect(data), collect(error)])
    data.end(o.send || '')
    const [d, e] = await got
    return { data: d.toString(), error: e.toString() }
  }))
  console.log(JSON.stringify({ results }))
  process.exit(0)
}
