// The client against the real local stack, once per transport: a purchase,
// a buyer who cancels, a buyer whose payment notification is lost, and
// payfn's error codes; then what only one transport does (login and its
// retry; the platform's identity).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'

import { createPayfn, PayfnError, ClientCodes } from '../index.js'
import { fakeWx, stack, noStack, service, deliveries, acknowledged, newOpenID } from '../testwx/wx.js'

const transports = {
  request: (wx, extra) => createPayfn(Object.assign({ transport: 'request', baseURL: stack.httpURL, wx }, extra)),
  callContainer: (wx, extra) => createPayfn(Object.assign({ transport: 'callContainer', service, env: stack.cloudEnv, wx }, extra)),
  callHTTPFunction: (wx, extra) => createPayfn(Object.assign({ transport: 'callHTTPFunction', env: stack.cloudEnv, wx }, extra)),
  callFunction: (wx, extra) => createPayfn(Object.assign({ transport: 'callFunction', env: stack.cloudEnv, wx }, extra)),
}

/** Asserts err is a PayfnError with these fields. */
function payfnError(want) {
  return (err) => {
    assert.ok(err instanceof PayfnError, 'not a PayfnError: ' + err)
    for (const k in want) assert.equal(err[k], want[k], k + ' of ' + err.code + ': ' + err.message)
    return true
  }
}

for (const [name, client] of Object.entries(transports)) {
  describe('over ' + name, { skip: noStack }, () => {
    test('a purchase ends PAID, with the notification delivered', async () => {
      const wx = fakeWx({})
      const payfn = client(wx)
      const order = await payfn.createOrder({ product_id: 'coffee-latte', quantity: 2 })
      assert.equal(order.status, 'NOTPAY')
      assert.equal(order.total_fen, 5600)
      const paid = await payfn.pay(order.order_id)
      assert.equal(paid.status, 'PAID')
      assert.equal(paid.order_id, order.order_id)
      assert.match(paid.transaction_id, /^4200/)
      // A second tap on a paid order pays nothing again: it resolves PAID.
      assert.equal((await payfn.pay(order.order_id)).status, 'PAID')
      assert.equal(wx.calls.filter((c) => c === 'requestPayment').length, 1)
      // WeChat Pay's notification reached verifyPayment too (it may land
      // after the query that saw PAID).
      assert.ok(await acknowledged(order.order_id), 'no notification was acknowledged')
    })

    test('a buyer who cancels: PAYMENT_CANCELLED, the order still NOTPAY', async () => {
      const payfn = client(fakeWx({ payment: 'cancel' }))
      const order = await payfn.createOrder({ product_id: 'article-42' })
      const err = await payfn.pay(order.order_id).then(() => assert.fail('pay resolved'), (e) => e)
      payfnError({ code: ClientCodes.PAYMENT_CANCELLED, status: 0 })(err)
      assert.equal(err.order.status, 'NOTPAY', 'the order was not queried after the cancel')
      assert.equal((await payfn.queryOrder(order.order_id)).status, 'NOTPAY')
    })

    test('a lost notification: pay still ends PAID, reconciled by queryOrder', async () => {
      const payfn = client(fakeWx({ payment: 'pay-no-notify' }))
      const order = await payfn.createOrder({ product_id: 'member-month' })
      const paid = await payfn.pay(order.order_id)
      assert.equal(paid.status, 'PAID')
      assert.equal(paid.total_fen, 1990)
      assert.deepEqual(await deliveries(order.order_id), [], 'a notification was delivered after all')
    })

    test("payfn's error codes surface as PayfnError", async () => {
      const payfn = client(fakeWx({}))
      await assert.rejects(payfn.createOrder({ product_id: 'no-such-product' }),
        payfnError({ code: 'PRODUCT_NOT_FOUND', status: 404 }))
      await assert.rejects(payfn.createOrder({ product_id: 'retired-mug' }), payfnError({ code: 'PRODUCT_NOT_ON_SALE', status: 409 }))
      await assert.rejects(payfn.createOrder({ product_id: 'coffee-latte', productId: 'x' }), payfnError({ code: 'UNKNOWN_FIELD', status: 400 }))
      await assert.rejects(payfn.pay('PF20261201000000NOSUCHORDER2'), payfnError({ code: 'ORDER_NOT_FOUND', status: 404 }))
      // Every payfn error names its request.
      await assert.rejects(payfn.queryOrder(''), (err) => err.code === 'INVALID_ORDER_ID' && err.requestId !== '')
    })

    test("another buyer's order is not found", async () => {
      const mine = client(fakeWx({}))
      const order = await mine.createOrder({ product_id: 'article-42' })
      const theirs = client(fakeWx({}))
      await assert.rejects(theirs.queryOrder(order.order_id), payfnError({ code: 'ORDER_NOT_FOUND', status: 404 }))
      await assert.rejects(theirs.pay(order.order_id), payfnError({ code: 'ORDER_NOT_FOUND' }))
    })

    test('a repeated request_id returns the first order', async () => {
      const payfn = client(fakeWx({}))
      const first = await payfn.createOrder({ product_id: 'article-42', request_id: 'tap-1' })
      const again = await payfn.createOrder({ product_id: 'article-42', request_id: 'tap-1' })
      assert.equal(again.order_id, first.order_id)
      await assert.rejects(payfn.createOrder({ product_id: 'article-42', quantity: 3, request_id: 'tap-1' }),
        payfnError({ code: 'IDEMPOTENCY_CONFLICT', status: 409 }))
    })
  })
}

describe('wx.request: login', { skip: noStack }, () => {
  test('logs in once and keeps the token', async () => {
    const wx = fakeWx({})
    const payfn = transports.request(wx)
    const order = await payfn.createOrder({ product_id: 'article-42' })
    await payfn.queryOrder(order.order_id)
    assert.deepEqual(wx.calls, ['login', 'request', 'request', 'request'])
  })

  test('a token payfn refuses is replaced once by logging in again', async () => {
    const wx = fakeWx({})
    let kept = { token: 'v1.forged', expires_at: new Date(Date.now() + 3600e3).toISOString() }
    const payfn = transports.request(wx, { session: { get: () => kept, set: (s) => { kept = s } } })
    const order = await payfn.createOrder({ product_id: 'article-42' })
    assert.equal(order.status, 'NOTPAY')
    assert.deepEqual(wx.calls, ['request', 'login', 'request', 'request'])
    assert.notEqual(kept.token, 'v1.forged')
    assert.ok(Date.parse(kept.expires_at) > Date.now())
  })

  test('an expired token is not sent: login first', async () => {
    const wx = fakeWx({})
    const payfn = transports.request(wx, { session: { get: () => ({ token: 'v1.old', expires_at: '2020-01-01T00:00:00Z' }), set() {} } })
    await payfn.createOrder({ product_id: 'article-42' })
    assert.deepEqual(wx.calls.slice(0, 2), ['login', 'request'])
  })

  test('a login WeChat refuses is LOGIN_CODE_REJECTED, not retried', async () => {
    const wx = fakeWx({})
    wx.login = (opts) => { wx.calls.push('login'); setTimeout(() => opts.success({ code: 'not-a-code', errMsg: 'login:ok' })) }
    await assert.rejects(transports.request(wx).createOrder({ product_id: 'article-42' }),
      payfnError({ code: 'LOGIN_CODE_REJECTED', status: 401 }))
    assert.deepEqual(wx.calls, ['login', 'request'])
  })

  test('no answer at all is TRANSPORT_ERROR', async () => {
    const payfn = createPayfn({ transport: 'request', baseURL: 'http://127.0.0.1:1', wx: fakeWx({}) })
    await assert.rejects(payfn.queryOrder('PF1'), payfnError({ code: ClientCodes.TRANSPORT_ERROR, status: 0 }))
  })
})

describe('platform identity', { skip: noStack }, () => {
  for (const name of ['callContainer', 'callHTTPFunction', 'callFunction']) {
    test(name + ': no signed-in user is UNAUTHENTICATED', async () => {
      await assert.rejects(transports[name](fakeWx({ openid: '' })).createOrder({ product_id: 'article-42' }),
        payfnError({ code: 'UNAUTHENTICATED', status: 401 }))
    })

    test(name + ': a call that is not from a mini-program client is UNAUTHENTICATED', async () => {
      await assert.rejects(transports[name](fakeWx({ source: 'wx_http' })).createOrder({ product_id: 'article-42' }),
        payfnError({ code: 'UNAUTHENTICATED', status: 401 }))
    })
  }

  test('the platform transports serve one buyer the same orders', async () => {
    const openid = newOpenID('all')
    const order = await transports.callContainer(fakeWx({ openid })).createOrder({ product_id: 'article-42' })
    assert.equal((await transports.callHTTPFunction(fakeWx({ openid })).queryOrder(order.order_id)).order_id, order.order_id)
    assert.equal((await transports.callFunction(fakeWx({ openid })).queryOrder(order.order_id)).order_id, order.order_id)
  })

  test('callFunction: a function the platform cannot find is TRANSPORT_ERROR', async () => {
    const payfn = transports.callFunction(fakeWx({}), { functions: { queryOrder: 'no-such-function' } })
    await assert.rejects(payfn.queryOrder('PF1'), payfnError({ code: ClientCodes.TRANSPORT_ERROR }))
  })
})
