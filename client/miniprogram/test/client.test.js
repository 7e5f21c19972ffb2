// The client's own logic, with no stack: pay's polling and its ends, and how
// each transport reads an answer. payfn is played by a scripted transport
// (or a scripted wx.cloud), WeChat by a wx whose requestPayment is scripted.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { createPayfn, PayfnError, ClientCodes } from '../index.js'

const fast = { interval: 5, maxInterval: 20, timeout: 400 }

/** A wx whose requestPayment ends as errMsg says. */
function wxPaying(errMsg) {
  return {
    requestPayment(o) {
      setTimeout(() => (errMsg === 'requestPayment:ok' ? o.success : o.fail)({ errMsg }))
    },
  }
}

const payment = { appId: 'wx1', timeStamp: '1', nonceStr: 'n', package: 'prepay_id=wx1', signType: 'RSA', paySign: 's' }

/**
 * A transport answering pay with payment and each queryOrder with the next
 * of answers (an Error is thrown, the last answer repeats); it counts queries.
 */
function scripted(answers) {
  const t = async (op, body) => {
    if (op === 'pay') return { order_id: body.order_id, payment }
    t.queries++
    const a = answers[Math.min(t.queries, answers.length) - 1]
    if (a instanceof Error) throw a
    return Object.assign({ order_id: body.order_id }, a)
  }
  t.queries = 0
  return t
}

test('pay polls with backoff until PAID', async () => {
  const transport = scripted([{ status: 'NOTPAY' }, { status: 'NOTPAY' }, { status: 'NOTPAY' }, { status: 'PAID' }])
  const payfn = createPayfn({ transport, wx: wxPaying('requestPayment:ok'), poll: { interval: 20, maxInterval: 40, timeout: 5000 } })
  const start = Date.now()
  const order = await payfn.pay('PF1')
  assert.equal(order.status, 'PAID')
  assert.equal(transport.queries, 4)
  // Waits of 20, 40 and 40 ms between the four queries.
  assert.ok(Date.now() - start >= 95, 'waited only ' + (Date.now() - start) + ' ms')
})

test('pay gives up with PAYMENT_PENDING and the order as last seen', async () => {
  const transport = scripted([{ status: 'NOTPAY' }])
  const payfn = createPayfn({ transport, wx: wxPaying('requestPayment:ok'), poll: fast })
  const err = await payfn.pay('PF1').then(() => assert.fail('resolved'), (e) => e)
  assert.ok(err instanceof PayfnError)
  assert.equal(err.code, ClientCodes.PAYMENT_PENDING)
  assert.equal(err.order.status, 'NOTPAY')
  assert.ok(transport.queries >= 3 && transport.queries < 40, transport.queries + ' queries')
})

test('pay keeps polling through transient failures, not through a refusal', async () => {
  const unavailable = new PayfnError('STORE_UNAVAILABLE', 'retry', { status: 503 })
  const lost = new PayfnError(ClientCodes.TRANSPORT_ERROR, 'no answer')
  let payfn = createPayfn({ transport: scripted([unavailable, lost, { status: 'PAID' }]), wx: wxPaying('requestPayment:ok'), poll: fast })
  assert.equal((await payfn.pay('PF1')).status, 'PAID')

  const refused = new PayfnError('UNAUTHENTICATED', 'who are you', { status: 401 })
  payfn = createPayfn({ transport: scripted([refused, { status: 'PAID' }]), wx: wxPaying('requestPayment:ok'), poll: fast })
  await assert.rejects(payfn.pay('PF1'), (err) => err === refused)
})

test('pay ends CLOSED and EXCEPTION as errors carrying the order', async () => {
  for (const status of ['CLOSED', 'EXCEPTION']) {
    const payfn = createPayfn({ transport: scripted([{ status }]), wx: wxPaying('requestPayment:ok'), poll: fast })
    await assert.rejects(payfn.pay('PF1'), (err) => err.code === 'ORDER_' + status && err.order.status === status)
  }
  assert.equal(ClientCodes.ORDER_CLOSED, 'ORDER_CLOSED')
  assert.equal(ClientCodes.ORDER_EXCEPTION, 'ORDER_EXCEPTION')
})

test('pay on an order settled already asks nothing of WeChat: PAID resolves, the rest reject', async () => {
  for (const [status, outcome] of [['PAID', 'PAID'], ['CLOSED', 'ORDER_CLOSED']]) {
    const notPayable = new PayfnError('ORDER_NOT_PAYABLE', 'the order is ' + status, { status: 409 })
    const transport = async (op, body) => {
      if (op === 'pay') throw notPayable
      return { order_id: body.order_id, status }
    }
    const payfn = createPayfn({ transport, wx: { requestPayment: () => assert.fail('requestPayment called') } })
    const got = await payfn.pay('PF1').then((order) => order.status, (err) => err.code)
    assert.equal(got, outcome)
  }
})

test('a cancel queries the order once: a payment that went through anyway resolves', async () => {
  let transport = scripted([{ status: 'NOTPAY' }])
  let payfn = createPayfn({ transport, wx: wxPaying('requestPayment:fail cancel'), poll: fast })
  await assert.rejects(payfn.pay('PF1'), (err) => err.code === ClientCodes.PAYMENT_CANCELLED && err.cause.errMsg === 'requestPayment:fail cancel')
  assert.equal(transport.queries, 1)

  transport = scripted([{ status: 'PAID' }])
  payfn = createPayfn({ transport, wx: wxPaying('requestPayment:fail cancel'), poll: fast })
  assert.equal((await payfn.pay('PF1')).status, 'PAID')
})

test('another requestPayment failure is PAYMENT_FAILED; a failed query after it still reports it', async () => {
  const payfn = createPayfn({ transport: scripted([new PayfnError(ClientCodes.TRANSPORT_ERROR, 'x')]), wx: wxPaying('requestPayment:fail system error'), poll: fast })
  await assert.rejects(payfn.pay('PF1'), (err) => err.code === ClientCodes.PAYMENT_FAILED && err.order === undefined && /system error/.test(err.message))
})

test('createOrder sends payfn its fields, quantity 1 and a request_id by default', async () => {
  const sent = []
  const payfn = createPayfn({ transport: async (op, body) => { sent.push([op, body]); return body } })
  await payfn.createOrder({ product_id: 'latte' })
  await payfn.createOrder({ product_id: 'latte', quantity: 2, request_id: 'r-1' })
  assert.equal(sent[0][0], 'createOrder')
  assert.equal(sent[0][1].quantity, 1)
  assert.match(sent[0][1].request_id, /^[A-Za-z0-9_.:-]{1,64}$/)
  assert.deepEqual(sent[1][1], { product_id: 'latte', quantity: 2, request_id: 'r-1' })
})

test('callFunction: answers read as {status, request_id, body}', async () => {
  let result
  const cloud = { callFunction: (o) => setTimeout(() => o.success({ result, errMsg: 'cloud.callFunction:ok' })) }
  const payfn = createPayfn({ transport: 'callFunction', cloud })
  result = { status: 200, request_id: 'r1', body: { order_id: 'PF1', status: 'NOTPAY' } }
  assert.equal((await payfn.queryOrder('PF1')).status, 'NOTPAY')
  result = { status: 404, request_id: 'r2', body: { code: 'ORDER_NOT_FOUND', message: 'no such order', request_id: 'r2' } }
  await assert.rejects(payfn.queryOrder('PF1'), (err) => err.code === 'ORDER_NOT_FOUND' && err.status === 404 && err.requestId === 'r2')
  result = 'hello from another function'
  await assert.rejects(payfn.queryOrder('PF1'), (err) => err.code === ClientCodes.TRANSPORT_ERROR)
})

test('callContainer: a non-2xx answer delivered through fail is still payfn\'s answer', async () => {
  const cloud = {
    callContainer: (o) => setTimeout(() => o.fail({ statusCode: 409, data: { code: 'ORDER_EXPIRED', message: 'create a new order', request_id: 'r3' }, header: {}, errMsg: 'cloud.callContainer:fail' })),
  }
  const payfn = createPayfn({ transport: 'callContainer', service: 'payfn', cloud })
  await assert.rejects(payfn.pay('PF1'), (err) => err.code === 'ORDER_EXPIRED' && err.status === 409 && err.requestId === 'r3')
})

test('a gateway page is TRANSPORT_ERROR with its status', async () => {
  const wx = { request: (o) => setTimeout(() => o.success({ statusCode: 502, data: '<html>Bad Gateway</html>', header: { 'x-request-id': 'gw' }, errMsg: 'request:ok' })), login: (o) => o.success({ code: 'c' }) }
  const payfn = createPayfn({ transport: 'request', baseURL: 'https://api.example.com', wx, session: { get: () => ({ token: 't', expires_at: '2999-01-01T00:00:00Z' }), set() {} } })
  await assert.rejects(payfn.queryOrder('PF1'), (err) => err.code === ClientCodes.TRANSPORT_ERROR && err.status === 502 && err.requestId === 'gw')
})

test('a transport must be chosen', () => {
  assert.throws(() => createPayfn({}), TypeError)
  assert.throws(() => createPayfn({ transport: 'request', wx: {} }), /baseURL/)
  assert.throws(() => createPayfn({ transport: 'callContainer', cloud: {} }), /service/)
})
