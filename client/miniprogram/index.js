/**
 * payfn's mini-program client: createOrder, pay and queryOrder over the
 * transport a deployment uses, with payfn's error codes as typed errors.
 * The transports (docs/platform.md): wx.request with payfn's login (token
 * mode), and in platform mode wx.cloud.callFunction (CloudBase event
 * functions), wx.cloud.callHTTPFunction (CloudBase HTTP functions) and
 * wx.cloud.callContainer (WeChat Cloud Hosting).
 *
 * Plain ES module, no dependencies. `pay` runs the whole payment: payfn's
 * pay, then wx.requestPayment, then queryOrder until the order is settled,
 * because wx.requestPayment's success callback proves nothing (README,
 * "POST /pay"); only payfn's order says PAID.
 *
 * @module payfn
 */

/** Codes this library gives, beside payfn's own (README, "HTTP contract"). */
export const ClientCodes = Object.freeze({
  /** No payfn answer: the call failed on the way, or the answer is not payfn's. */
  TRANSPORT_ERROR: 'TRANSPORT_ERROR',
  /** The buyer closed the payment sheet (the order was queried once after). */
  PAYMENT_CANCELLED: 'PAYMENT_CANCELLED',
  /** wx.requestPayment failed for another reason (the order was queried once after). */
  PAYMENT_FAILED: 'PAYMENT_FAILED',
  /** Still NOTPAY when polling gave up: ask queryOrder again later. */
  PAYMENT_PENDING: 'PAYMENT_PENDING',
  /** The order ended CLOSED (unpaid), not PAID. */
  ORDER_CLOSED: 'ORDER_CLOSED',
  /** The order ended EXCEPTION (paid the wrong amount): the merchant must look at it. */
  ORDER_EXCEPTION: 'ORDER_EXCEPTION',
})

/**
 * A failed call. `code` is payfn's stable code (`PRODUCT_NOT_FOUND`,
 * `UNAUTHENTICATED`, ...) or one of ClientCodes; `status` the HTTP status
 * payfn answered (0 when no payfn answer was involved); `requestId` the id
 * to quote when reporting a problem; `order`, when pay gives up, the order
 * as last seen.
 */
export class PayfnError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{status?: number, requestId?: string, order?: object, cause?: unknown}} [details]
   */
  constructor(code, message, details) {
    const d = details || {}
    super(message)
    this.name = 'PayfnError'
    this.code = code
    this.status = d.status || 0
    this.requestId = d.requestId || ''
    if (d.order !== undefined) this.order = d.order
    if (d.cause !== undefined) this.cause = d.cause
  }
}

/** Calls obj[method](options) in the callback style every wx API takes. */
function invoke(obj, method, options) {
  return new Promise((resolve, reject) => {
    obj[method](Object.assign({}, options, { success: resolve, fail: reject }))
  })
}

function transportError(what, err, status) {
  const detail = err && err.errMsg ? err.errMsg : String(err)
  return new PayfnError(ClientCodes.TRANSPORT_ERROR, what + ': ' + detail, { status, cause: err })
}

function header(h, name) {
  for (const k in h || {}) if (k.toLowerCase() === name.toLowerCase()) return h[k]
  return ''
}

/**
 * Turns one payfn answer into its body (2xx) or a PayfnError: payfn's
 * {code, message, request_id} when it is one, TRANSPORT_ERROR otherwise (a
 * gateway's page, an answer cut short).
 */
function settle(what, status, body, requestId) {
  if (typeof body === 'string') {
    try { body = JSON.parse(body) } catch (e) { /* not JSON: judged below */ }
  }
  const isObject = body !== null && typeof body === 'object'
  if (status >= 200 && status < 300 && isObject) return body
  if (isObject && typeof body.code === 'string') {
    return Promise.reject(new PayfnError(body.code, body.message || body.code, { status, requestId: body.request_id || requestId }))
  }
  return Promise.reject(new PayfnError(ClientCodes.TRANSPORT_ERROR,
    what + ': answered ' + status + ' with no payfn body', { status, requestId }))
}

/**
 * wx.request to payfn's HTTP functions, with payfn's login: wx.login's code
 * is exchanged at POST /login for a session token, kept in `session`, and
 * replaced once when a call answers 401 UNAUTHENTICATED.
 */
function requestTransport(wx, o) {
  if (!o.baseURL) throw new TypeError('payfn: transport "request" needs baseURL')
  const base = o.baseURL.replace(/\/+$/, '')
  let memory = null
  const session = o.session || { get: () => memory, set: (s) => { memory = s } }
  let loggingIn = null

  async function post(route, body, token) {
    const h = { 'content-type': 'application/json' }
    if (token) h.Authorization = 'Bearer ' + token
    let res
    try {
      res = await invoke(wx, 'request', { url: base + route, method: 'POST', header: h, data: body, dataType: 'json' })
    } catch (err) {
      throw transportError('wx.request ' + route, err)
    }
    return settle(route, res.statusCode, res.data, header(res.header, 'X-Request-Id'))
  }

  function login() {
    if (!loggingIn) {
      loggingIn = (async () => {
        let code
        try {
          code = (await invoke(wx, 'login', {})).code
        } catch (err) {
          throw transportError('wx.login', err)
        }
        const s = await post('/login', { code })
        session.set({ token: s.token, expires_at: s.expires_at })
        return s.token
      })()
      const done = () => { loggingIn = null }
      loggingIn.then(done, done)
    }
    return loggingIn
  }

  return async (op, body) => {
    const s = session.get()
    // A token within a minute of expiry is not worth a 401.
    const usable = s && s.token && !(Date.parse(s.expires_at) - 60000 < Date.now())
    const token = usable ? s.token : await login()
    try {
      return await post('/' + op, body, token)
    } catch (err) {
      if (!usable || err.code !== 'UNAUTHENTICATED') throw err
      return post('/' + op, body, await login())
    }
  }
}

/** The event or HTTP functions' names: o.functions over payfn's own. */
const functionNames = (o) => Object.assign({ createOrder: 'createOrder', pay: 'pay', queryOrder: 'queryOrder' }, o.functions)

/**
 * HTTP through the platform, which adds the caller's X-WX-* headers:
 * wx.cloud.callContainer to one WeChat Cloud Hosting service serving every
 * route, or wx.cloud.callHTTPFunction to the CloudBase HTTP function of
 * each operation.
 */
function platformHTTPTransport(cloud, api, o) {
  if (api === 'callContainer' && !o.service) throw new TypeError('payfn: transport "callContainer" needs service (its X-WX-SERVICE)')
  const prefix = (o.pathPrefix || '').replace(/\/+$/, '')
  const names = functionNames(o)
  return async (op, body) => {
    const options = { path: prefix + '/' + op, method: 'POST', data: body, header: { 'content-type': 'application/json' } }
    if (api === 'callContainer') options.header['X-WX-SERVICE'] = o.service
    else options.name = names[op]
    if (o.env) options.config = { env: o.env }
    let res
    try {
      res = await invoke(cloud, api, options)
    } catch (err) {
      // Some base libraries fail non-2xx answers; they still carry them.
      if (!err || typeof err.statusCode !== 'number') throw transportError('wx.cloud.' + api + ' /' + op, err)
      res = err
    }
    return settle('/' + op, res.statusCode, res.data, header(res.header, 'X-Request-Id'))
  }
}

/**
 * wx.cloud.callFunction to payfn's CloudBase event functions: data is the
 * request body, the result is {status, request_id, body}.
 */
function functionTransport(cloud, o) {
  const names = functionNames(o)
  return async (op, body) => {
    const options = { name: names[op], data: body }
    if (o.env) options.config = { env: o.env }
    let res
    try {
      res = await invoke(cloud, 'callFunction', options)
    } catch (err) {
      throw transportError('wx.cloud.callFunction ' + names[op], err)
    }
    const a = res && res.result
    if (!a || typeof a.status !== 'number') {
      throw new PayfnError(ClientCodes.TRANSPORT_ERROR, 'function ' + names[op] + ' did not answer {status, request_id, body}')
    }
    return settle(names[op], a.status, a.body, a.request_id)
  }
}

function newRequestId() {
  return 'mp-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 12)
}

/** The mini-program's global wx, if there is one. */
function globalWx() {
  return typeof wx === 'undefined' ? undefined : wx // eslint-disable-line no-undef
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Worth asking again: no answer, or payfn could not answer for now. */
const transient = (err) => err instanceof PayfnError && (err.code === ClientCodes.TRANSPORT_ERROR || err.status >= 500 || err.status === 429)

/**
 * Creates a payfn client.
 *
 * @param {object} options
 * @param {'request'|'callContainer'|'callHTTPFunction'|'callFunction'|Function} options.transport
 *   how calls reach payfn; a function (operation, body) => Promise of the
 *   answer's body makes a transport of your own
 * @param {string} [options.baseURL] request: payfn's HTTP base URL
 * @param {{get(): ?{token: string, expires_at: string}, set(s: {token: string, expires_at: string}): void}} [options.session]
 *   request: where the session token is kept (default: memory)
 * @param {string} [options.service] callContainer: the Cloud Hosting service name
 * @param {string} [options.pathPrefix] callContainer, callHTTPFunction: prefix of every route
 * @param {{createOrder?: string, pay?: string, queryOrder?: string}} [options.functions]
 *   callFunction, callHTTPFunction: the functions' names (default payfn's)
 * @param {string} [options.env] wx.cloud transports: the CloudBase environment id
 * @param {object} [options.cloud] wx.cloud transports: a wx.cloud.Cloud instance (default wx.cloud)
 * @param {{interval?: number, maxInterval?: number, timeout?: number}} [options.poll]
 *   pay's polling in ms: first wait, longest wait, overall (default 500, 4000, 30000)
 * @param {object} [options.wx] the wx object (default the global one)
 */
export function createPayfn(options) {
  const o = options || {}
  const wx = o.wx || globalWx()
  const cloud = o.cloud || (wx && wx.cloud)
  const poll = Object.assign({ interval: 500, maxInterval: 4000, timeout: 30000 }, o.poll)
  if (o.transport === 'request' ? !wx : typeof o.transport === 'string' && !cloud) {
    throw new TypeError('payfn: no ' + (o.transport === 'request' ? 'wx' : 'wx.cloud') + ' object to call ' + o.transport + ' on')
  }
  let send
  if (typeof o.transport === 'function') send = o.transport
  else if (o.transport === 'request') send = requestTransport(wx, o)
  else if (o.transport === 'callContainer' || o.transport === 'callHTTPFunction') send = platformHTTPTransport(cloud, o.transport, o)
  else if (o.transport === 'callFunction') send = functionTransport(cloud, o)
  else throw new TypeError('payfn: transport must be "request", "callContainer", "callHTTPFunction", "callFunction" or a function')

  /** The PAID order, or a PayfnError naming the status it ended in. */
  function outcome(order) {
    if (order.status === 'PAID') return order
    throw new PayfnError('ORDER_' + order.status, 'order ' + order.order_id + ' is ' + order.status, { order })
  }

  async function untilSettled(orderId) {
    const deadline = Date.now() + poll.timeout
    let wait = poll.interval
    let order
    for (;;) {
      let latest
      try {
        latest = await queryOrder(orderId)
      } catch (err) {
        if (!transient(err)) throw err
      }
      if (latest) order = latest
      if (latest && latest.status !== 'NOTPAY') return outcome(latest)
      if (Date.now() + wait > deadline) {
        throw new PayfnError(ClientCodes.PAYMENT_PENDING, 'order ' + orderId + ' is not settled yet: ask queryOrder later', { order })
      }
      await sleep(wait)
      wait = Math.min(wait * 2, poll.maxInterval)
    }
  }

  /**
   * Creates an order: `{product_id, quantity, request_id}` as payfn takes
   * them; quantity defaults to 1 and request_id (the idempotency key) to a
   * new one. Resolves with the order (status NOTPAY).
   */
  function createOrder(order) {
    return send('createOrder', Object.assign({ quantity: 1, request_id: newRequestId() }, order))
  }

  /** Resolves with the caller's order; while NOTPAY payfn asks WeChat Pay. */
  function queryOrder(orderId) {
    return send('queryOrder', { order_id: orderId })
  }

  /**
   * Pays an order: payfn's pay, wx.requestPayment, then queryOrder with
   * backoff until the order leaves NOTPAY. Resolves with the PAID order;
   * rejects with PAYMENT_CANCELLED or PAYMENT_FAILED (after one queryOrder:
   * a payment that went through anyway resolves), ORDER_CLOSED,
   * ORDER_EXCEPTION, PAYMENT_PENDING, or payfn's own codes. An order
   * already settled is not paid again: PAID resolves, the rest reject.
   */
  async function pay(orderId) {
    let p
    try {
      p = (await send('pay', { order_id: orderId })).payment
    } catch (err) {
      // Settled already (a second tap, a retry after a restart): say how.
      if (err.code !== 'ORDER_NOT_PAYABLE') throw err
      return outcome(await queryOrder(orderId))
    }
    try {
      await invoke(wx, 'requestPayment', {
        timeStamp: p.timeStamp, nonceStr: p.nonceStr, package: p.package, signType: p.signType, paySign: p.paySign,
      })
    } catch (err) {
      const msg = (err && err.errMsg) || String(err)
      const code = /cancel/.test(msg) ? ClientCodes.PAYMENT_CANCELLED : ClientCodes.PAYMENT_FAILED
      let order
      try {
        order = await queryOrder(orderId)
      } catch (e) { /* what the buyer did is the news */ }
      if (order && order.status === 'PAID') return order
      throw new PayfnError(code, 'wx.requestPayment: ' + msg, { order, cause: err })
    }
    return untilSettled(orderId)
  }

  return { createOrder, pay, queryOrder }
}
