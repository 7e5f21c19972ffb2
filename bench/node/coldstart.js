// The Node.js cold-start peer: a Lambda function (custom runtime) that loads
// wechatpay-node-v3 and the mongodb driver, builds its clients as a payment
// function would (no network), then asks the Runtime API for its first
// invocation. The benchmark times exec → that GET /next.
'use strict';
const http = require('http');
const Pay = require('wechatpay-node-v3');
const { MongoClient } = require('mongodb');

const pay = new Pay({
  appid: process.env.WECHAT_APPID, mchid: process.env.WECHATPAY_MCHID,
  serial_no: process.env.WECHATPAY_MCH_CERT_SERIAL,
  publicKey: Buffer.from(process.env.WECHATPAY_PUBLIC_KEY), privateKey: Buffer.from(process.env.WECHATPAY_MCH_PRIVATE_KEY),
  key: process.env.WECHATPAY_APIV3_KEY,
});
const mongo = new MongoClient(process.env.MONGODB_URI); // connects on first use
globalThis.handlerDeps = { pay, mongo };

http.get(`http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next`, (res) => res.resume());
