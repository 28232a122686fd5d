/** Supervised send across nodes through JetStream (see {@link SupervisedDelivery}). */
export { type RemoteName, SupervisedDelivery, type SupervisedDeliveryOptions } from './SupervisedDelivery.js';
