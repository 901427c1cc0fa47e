/**
 * The narrow face of the cluster that services on top of it see: register a handler for a peer
 * message type, and send a message to another node's peer port. Services (router replicas, hints,
 * repair, wide-column replicas) depend on this, not on the Cluster class, so the cluster never has to
 * know them and no import circle forms.
 */

/** Serves one peer message type: the body as it came (validate it), and the sending node's id. */
export type PeerServiceHandler = (body: Record<string, unknown>, fromNodeId: string) => Promise<unknown>;

export interface PeerServices {
  /** Serve a peer message type (each type once; the cluster's own types are refused). */
  registerService(type: string, handler: PeerServiceHandler): void;
  /** Send a service message to another node's peer port. */
  request(nodeId: string, body: { t: string } & Record<string, unknown>, timeoutMs: number): Promise<unknown>;
}
