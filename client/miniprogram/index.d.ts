// Types of payfn's mini-program client (index.js).

/** Codes this library gives, beside payfn's own. */
export declare const ClientCodes: Readonly<{
  /** No payfn answer: the call failed on the way, or the answer is not payfn's. */
  TRANSPORT_ERROR: 'TRANSPORT_ERROR'
  /** The buyer closed the payment sheet (the order was queried once after). */
  PAYMENT_CANCELLED: 'PAYMENT_CANCELLED'
  /** wx.requestPayment failed for another reason (the order was queried once after). */
  PAYMENT_FAILED: 'PAYMENT_FAILED'
  /** Still NOTPAY when polling gave up: ask queryOrder again later. */
  PAYMENT_PENDING: 'PAYMENT_PENDING'
  /** The order ended CLOSED (unpaid), not PAID. */
  ORDER_CLOSED: 'ORDER_CLOSED'
  /** The order ended EXCEPTION (paid the wrong amount): the merchant must look at it. */
  ORDER_EXCEPTION: 'ORDER_EXCEPTION'
}>

export type ClientCode = (typeof ClientCodes)[keyof typeof ClientCodes]

/** payfn's codes for the client functions (README, "HTTP contract"). */
export type PayfnCode =
  | 'INVALID_REQUEST' | 'UNKNOWN_FIELD' | 'NOT_FOUND' | 'METHOD_NOT_ALLOWED' | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE' | 'INTERNAL' | 'SECRETS_UNAVAILABLE'
  | 'INVALID_LOGIN_CODE' | 'LOGIN_CODE_REJECTED'
  | 'INVALID_PRODUCT_ID' | 'INVALID_QUANTITY' | 'INVALID_REQUEST_ID' | 'INVALID_ORDER_ID'
  | 'ORDER_TOO_LARGE' | 'UNAUTHENTICATED' | 'PRODUCT_NOT_FOUND' | 'PRODUCT_NOT_ON_SALE'
  | 'IDEMPOTENCY_CONFLICT' | 'TOO_MANY_OPEN_ORDERS' | 'ORDER_NOT_FOUND' | 'ORDER_NOT_PAYABLE'
  | 'ORDER_EXPIRED' | 'PAYMENT_CHANNEL_ERROR' | 'PAYMENT_CHANNEL_UNAVAILABLE' | 'STORE_UNAVAILABLE'

/** A failed call. */
export declare class PayfnError extends Error {
  constructor(code: string, message: string, details?: { status?: number; requestId?: string; order?: Order; cause?: unknown })
  readonly name: 'PayfnError'
  /** payfn's stable code, or one of ClientCodes. */
  readonly code: PayfnCode | ClientCode | (string & {})
  /** The HTTP status payfn answered; 0 when no payfn answer was involved. */
  readonly status: number
  /** The request's id: quote it when reporting a problem ('' when there is none). */
  readonly requestId: string
  /** When pay gives up: the order as last seen, if it could be read. */
  readonly order?: Order
  /** What failed underneath (a wx API's {errMsg}, for one). */
  readonly cause?: unknown
}

export type OrderStatus = 'NOTPAY' | 'PAID' | 'CLOSED' | 'EXCEPTION'

/** An order as payfn answers it. */
export interface Order {
  order_id: string
  request_id: string
  product_id: string
  quantity: number
  total_fen: number
  currency: string
  status: OrderStatus
  product: { title: string; summary: string; image: string; price_fen: number }
  created_at: string
  expires_at: string
  updated_at: string
  transaction_id?: string
  paid_at?: string
  refund?: { refunded_fen: number; pending_fen: number; refund_status: string }
}

/** createOrder's request, as payfn takes it. */
export interface NewOrder {
  product_id: string
  /** 1–999; default 1. */
  quantity?: number
  /** The idempotency key (1–64 of A-Z a-z 0-9 _ . : -); default a new one. */
  request_id?: string
}

/** A session token as POST /login gives it. */
export interface Session {
  token: string
  expires_at: string
}

export type Operation = 'createOrder' | 'pay' | 'queryOrder'

/** A transport of your own: sends body to the operation, resolves with a 2xx answer's body, rejects with a PayfnError. */
export type Transport = (operation: Operation, body: object) => Promise<any>

interface Common {
  /** pay's polling in ms: first wait (500), longest wait (4000), overall (30000). */
  poll?: { interval?: number; maxInterval?: number; timeout?: number }
  /** The wx object; default the global one. */
  wx?: any
}

interface Cloud {
  /** The CloudBase environment id (wx.cloud's config.env). */
  env?: string
  /** A wx.cloud.Cloud instance (for another environment); default wx.cloud. */
  cloud?: any
}

export type Options =
  | (Common & {
      transport: 'request'
      /** payfn's HTTP base URL (a domain listed in the mini-program's request domains). */
      baseURL: string
      /** Where the session token is kept; default memory. */
      session?: { get(): Session | null | undefined | ''; set(session: Session): void }
    })
  | (Common & Cloud & {
      transport: 'callContainer'
      /** The Cloud Hosting service name (X-WX-SERVICE). */
      service: string
      /** Prefix of every route, when the service serves payfn under a path. */
      pathPrefix?: string
    })
  | (Common & Cloud & {
      transport: 'callHTTPFunction'
      /** The HTTP functions' names; default createOrder, pay, queryOrder. */
      functions?: { createOrder?: string; pay?: string; queryOrder?: string }
      /** Prefix of every route, when the functions serve payfn under a path. */
      pathPrefix?: string
    })
  | (Common & Cloud & {
      transport: 'callFunction'
      /** The event functions' names; default createOrder, pay, queryOrder. */
      functions?: { createOrder?: string; pay?: string; queryOrder?: string }
    })
  | (Common & { transport: Transport })

export interface Payfn {
  /** Creates an order; resolves with it (status NOTPAY). */
  createOrder(order: NewOrder): Promise<Order>
  /**
   * Pays an order: payfn's pay, wx.requestPayment, then queryOrder with
   * backoff until the order leaves NOTPAY. Resolves with the PAID order;
   * rejects with a PayfnError: PAYMENT_CANCELLED or PAYMENT_FAILED (after one
   * queryOrder: a payment that went through anyway resolves), ORDER_CLOSED,
   * ORDER_EXCEPTION, PAYMENT_PENDING, or payfn's own codes.
   */
  pay(orderId: string): Promise<Order>
  /** Resolves with the caller's order; while NOTPAY, payfn asks WeChat Pay. */
  queryOrder(orderId: string): Promise<Order>
}

/** Creates a payfn client over the transport options name. */
export declare function createPayfn(options: Options): Payfn
