// A stand-in for the mini-program's wx object (for test/), played for one buyer against
// the real local stack that client_test.go starts (it exports the URLs).
// It does what WeChat and the platform do, through their real counterparts:
//
//   wx.login                 a code from the WeChat Pay simulator's control API
//   wx.request               an HTTP request (Node's fetch)
//   wx.cloud.callContainer   an HTTP request to the platform-mode stack
//   wx.cloud.callHTTPFunction  served by the httpserver adapter, the X-WX-*
//                            headers set as the gateway sets them (a
//                            client's own are dropped)
//   wx.cloud.callFunction    one invocation of the event function through the
//                            real CloudBase event adapter (client_test.go)
//   wx.requestPayment        the buyer pays the prepay at the simulator (with
//                            or without a notification), or cancels

/** Where the stack is; unset when these tests run outside `go test`. */
export const stack = {
  httpURL: process.env.PAYFN_TEST_HTTP_URL,
  simURL: process.env.PAYFN_TEST_SIM_URL,
  containerURL: process.env.PAYFN_TEST_CONTAINER_URL,
  functionsURL: process.env.PAYFN_TEST_FUNCTIONS_URL,
  appid: process.env.PAYFN_TEST_APPID,
  cloudEnv: process.env.PAYFN_TEST_CLOUD_ENV,
}

/** A reason to skip the stack's tests, or false. */
export const noStack = Object.values(stack).every(Boolean)
  ? false
  : 'no local stack: run these through `go test ./client/miniprogram` (it starts one)'

/** The Cloud Hosting service name the stand-in platform routes to the container. */
export const service = 'payfn'

let seq = 0

/** A new buyer's openid. */
export function newOpenID(label) {
  return 'o' + label + '_' + Date.now().toString(36) + '_' + (++seq) + Math.random().toString(36).slice(2, 8)
}

async function post(url, body, headers) {
  const res = await fetch(url, {
    method: 'POST',
    headers: Object.assign({ 'content-type': 'application/json' }, headers),
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, header: Object.fromEntries(res.headers), text }
}

function json(text) {
  try {
    return JSON.parse(text)
  } catch (e) {
    return text
  }
}

/**
 * The wx object of one buyer.
 *
 * @param {object} o
 * @param {string} [o.openid] the signed-in buyer ('' : the platform names no user)
 * @param {'pay'|'pay-no-notify'|'cancel'} [o.payment] what the buyer does at wx.requestPayment
 * @param {string} [o.source] the call source the platform reports (default wx_client)
 */
export function fakeWx(o) {
  const openid = o.openid === undefined ? newOpenID('buyer') : o.openid
  const payment = o.payment || 'pay'
  const calls = []
  // Callbacks run later, as wx's do, and never inside the caller's frame.
  const answer = (opts, api, work) => {
    calls.push(api)
    work().then(
      (res) => { if (res.errMsg.endsWith(':ok')) opts.success && opts.success(res); else opts.fail && opts.fail(res) },
      (err) => opts.fail && opts.fail({ errMsg: api + ':fail ' + err.message }),
    )
  }
  // The platform's gateway: the caller's X-WX-* headers replace any the
  // client set.
  const platformHTTP = async (api, opts) => {
    if (opts.config && opts.config.env !== stack.cloudEnv) return { errMsg: api + ':fail env not found' }
    const h = {}
    for (const k in opts.header || {}) if (!/^x-wx-/i.test(k)) h[k] = opts.header[k]
    if (openid) Object.assign(h, { 'X-WX-OPENID': openid, 'X-WX-APPID': stack.appid, 'X-WX-SOURCE': o.source || 'wx_client' })
    h['X-WX-ENV'] = stack.cloudEnv
    const r = await post(stack.containerURL + opts.path, opts.data, h)
    return { statusCode: r.status, data: json(r.text), header: r.header, errMsg: api + ':ok' }
  }
  const wx = {
    calls,
    openid,

    login(opts) {
      answer(opts, 'login', async () => {
        const r = await post(stack.simURL + '/sim/login-code', { openid })
        return { code: json(r.text).code, errMsg: 'login:ok' }
      })
    },

    request(opts) {
      answer(opts, 'request', async () => {
        const r = await post(opts.url, opts.data, opts.header)
        return { statusCode: r.status, data: opts.dataType === 'json' ? json(r.text) : r.text, header: r.header, errMsg: 'request:ok' }
      })
    },

    requestPayment(opts) {
      answer(opts, 'requestPayment', async () => {
        for (const k of ['timeStamp', 'nonceStr', 'package', 'signType', 'paySign']) {
          if (typeof opts[k] !== 'string' || opts[k] === '') return { errMsg: 'requestPayment:fail invalid ' + k }
        }
        if (payment === 'cancel') return { errMsg: 'requestPayment:fail cancel' }
        const r = await post(stack.simURL + '/sim/pay', {
          prepay_id: opts.package.replace(/^prepay_id=/, ''), no_notify: payment === 'pay-no-notify',
        })
        return { errMsg: r.status === 200 ? 'requestPayment:ok' : 'requestPayment:fail ' + r.text }
      })
    },

    cloud: {
      callContainer(opts) {
        answer(opts, 'cloud.callContainer', async () => {
          const name = Object.keys(opts.header || {}).find((k) => k.toLowerCase() === 'x-wx-service')
          if (!name || opts.header[name] !== service) return { errMsg: 'cloud.callContainer:fail service not found' }
          return platformHTTP('cloud.callContainer', opts)
        })
      },

      // An HTTP function per client function, each serving its own route
      // (played by the container's server, which serves them all).
      callHTTPFunction(opts) {
        answer(opts, 'cloud.callHTTPFunction', async () => {
          if (!/^(createOrder|pay|queryOrder)$/.test(opts.name)) return { errMsg: 'cloud.callHTTPFunction:fail function not found' }
          if (opts.path !== '/' + opts.name) return { statusCode: 404, data: { code: 'NOT_FOUND' }, header: {}, errMsg: 'cloud.callHTTPFunction:ok' }
          return platformHTTP('cloud.callHTTPFunction', opts)
        })
      },

      callFunction(opts) {
        answer(opts, 'cloud.callFunction', async () => {
          if (opts.config && opts.config.env !== stack.cloudEnv) return { errMsg: 'cloud.callFunction:fail env not found' }
          const h = {}
          if (openid) Object.assign(h, { 'X-Test-Openid': openid, 'X-Test-Source': o.source || 'wx_client' })
          // Older base libraries add userInfo to the data; payfn never reads it.
          const data = Object.assign({}, opts.data, { userInfo: { appId: stack.appid, openId: openid } })
          const r = await post(stack.functionsURL + '/' + encodeURIComponent(opts.name), data, h)
          if (r.status !== 200) {
            const e = json(r.text)
            return { errMsg: (e && e.errMsg) || 'cloud.callFunction:fail -501000 FunctionName parameter could not be found' }
          }
          return { result: json(r.text), requestID: r.header['x-request-id'] || '', errMsg: 'cloud.callFunction:ok' }
        })
      },
    },
  }
  return wx
}

/** What the simulator delivered for an order (its notifications). */
export async function deliveries(orderId) {
  const res = await fetch(stack.simURL + '/sim/deliveries?out_trade_no=' + encodeURIComponent(orderId))
  return res.json()
}

/** Whether payfn acknowledged a notification for the order within 10 s. */
export async function acknowledged(orderId) {
  for (const end = Date.now() + 10000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    if ((await deliveries(orderId)).some((d) => d.acked)) return true
  }
  return false
}
