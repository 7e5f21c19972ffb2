// The Node.js peer: wechatpay-node-v3 verifying and decrypting the
// notifications payfn's Go benchmark wrote to a folder, as a Node function
// would (verifySign, then decipher_gcm). Prints one JSON line with the time
// per notification. Usage: node peer.js <dir> [iterations]
'use strict';
const fs = require('fs');
const path = require('path');
const Pay = require('wechatpay-node-v3');

async function main() {
  const dir = process.argv[2];
  const iterations = Number(process.argv[3] || 2000);
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const notices = JSON.parse(fs.readFileSync(path.join(dir, 'notifications.json'), 'utf8'));
  const pay = new Pay({
    appid: cfg.appid, mchid: cfg.mchid, serial_no: cfg.mch_serial,
    publicKey: Buffer.from(cfg.public_key_pem), privateKey: Buffer.from(cfg.merchant_key_pem), key: cfg.apiv3_key,
  });
  // wechatpay-node-v3 2.2.1 looks the Wechatpay-Serial up in its static
  // certificate map and downloads platform certificates when it is missing;
  // putting the WeChat Pay public key under its id there is public-key mode
  // without network.
  Pay.certificates[cfg.public_key_id] = cfg.public_key_pem;

  async function one(n) {
    const h = n.headers;
    const ok = await pay.verifySign({
      timestamp: h['wechatpay-timestamp'], nonce: h['wechatpay-nonce'], body: n.body,
      serial: h['wechatpay-serial'], signature: h['wechatpay-signature'],
    });
    if (!ok) throw new Error('signature rejected');
    const r = JSON.parse(n.body).resource;
    const tx = pay.decipher_gcm(r.ciphertext, r.associated_data, r.nonce);
    if (!tx || tx.trade_state !== 'SUCCESS') throw new Error('decryption failed');
    return tx;
  }

  for (let i = 0; i < Math.min(200, iterations); i++) await one(notices[i % notices.length]); // warm up
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await one(notices[i % notices.length]);
  const wall = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  console.log(JSON.stringify({
    iterations, wall_ns_per_op: wall / iterations, cpu_ns_per_op: (cpu.user + cpu.system) * 1000 / iterations,
    node: process.version,
  }));
}

main().catch((e) => { console.error(e); process.exit(1); });
