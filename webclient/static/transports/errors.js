// Why a call could not start or ended, in a form the page can turn into plain words.

export class CallError extends Error {
  /**
   * kind: "refused" (the bot rejected the settings; message is its own words), "unreachable"
   * (no answer from the bot), "busy" (the bot is loading or has every line in use; message
   * says which), "no-route" (WebRTC could not connect in time: a firewall or NAT in the way),
   * "lost" (an established call dropped).
   */
  constructor(kind, message) {
    super(message);
    this.name = "CallError";
    this.kind = kind;
  }
}
