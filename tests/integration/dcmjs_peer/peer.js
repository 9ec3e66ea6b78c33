// A second DICOM stack for the integration tests: dcmjs-dimse as modality (C-STORE SCU) and as
// workstation (C-FIND, C-MOVE, C-GET SCU, storage SCP).
//
//   node peer.js <command> '<json options>'
//
// Prints one JSON object per line on stdout (responses, matches, received files) so the Python tests
// assert on what actually happened, never on this script's exit code alone.
// Known dcmjs-dimse 0.3.3 behaviour the callers work around (none of it is the gateway's doing):
//  - on one association carrying compressed and implicit VR files of one SOP class it skips the
//    implicit ones: the caller sends those on an association of their own ("associations" below);
//  - it refuses to write legacy dates such as 1993.04.30 unless allowInvalidVRLength is set;
//  - addAdditionalPresentationContext drops the SCP role a C-GET needs for storage classes missing
//    from its own list (key object selection among them): the role is set just before the
//    association request goes out (withScpRole below);
//  - the final C-MOVE/C-GET response repeats a stale "remaining" count;
//  - Server.listen binds every interface (the tests only connect through loopback).
"use strict";
const fs = require("fs");
const path = require("path");
const dimse = require("dcmjs-dimse");

const { Client, Server, Scp } = dimse;
const { PresentationContext } = dimse.association;
const { CStoreRequest, CFindRequest, CMoveRequest, CGetRequest } = dimse.requests;
const { CEchoResponse, CStoreResponse } = dimse.responses;
const { Status, PresentationContextResult, TransferSyntax } = dimse.constants;

const writeOptions = { allowInvalidVRLength: true };
const [command, json] = process.argv.slice(2);
const opts = JSON.parse(json || "{}");

function emit(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

function counts(response) {
  return {
    status: response.getStatus(),
    remaining: response.getRemaining(),
    completed: response.getCompleted(),
    failed: response.getFailures(),
    warnings: response.getWarnings(),
  };
}

// Runs the requests on one association; resolves when it is closed.
function associate(requests, extraSetup) {
  return new Promise((resolve) => {
    const client = new Client();
    for (const request of requests) client.addRequest(request);
    if (extraSetup) extraSetup(client);
    client.on("networkError", (e) => emit({ event: "networkError", message: String(e && e.message) }));
    client.on("associationRejected", (r) => emit({ event: "associationRejected", result: r.result, reason: r.reason }));
    client.on("associationAborted", () => emit({ event: "associationAborted" }));
    client.on("closed", () => resolve());
    client.send(opts.host || "127.0.0.1", opts.port, opts.calling, opts.called, {
      datasetWriteOptions: writeOptions,
      associationTimeout: 30000,
      pduTimeout: 60000,
    });
  });
}

async function store() {
  // opts.associations: a list of lists of files, each list sent on its own association.
  for (const files of opts.associations) {
    const requests = files.map((file) => {
      const request = new CStoreRequest(file);
      request.on("response", (response) => emit({ event: "store", file, status: response.getStatus() }));
      return request;
    });
    await associate(requests);
  }
}

function identifierRequest() {
  const keys = opts.keys;
  switch (opts.level) {
    case "STUDY": return CFindRequest.createStudyFindRequest(keys);
    case "SERIES": return CFindRequest.createSeriesFindRequest(keys);
    case "IMAGE": return CFindRequest.createImageFindRequest(keys);
    default: throw new Error(`unknown level ${opts.level}`);
  }
}

async function find() {
  const request = identifierRequest();
  request.on("response", (response) => {
    const out = { event: "find", status: response.getStatus() };
    if (response.getStatus() === Status.Pending && response.hasDataset()) {
      out.match = response.getDataset().getElements();
    }
    emit(out);
  });
  await associate([request]);
}

async function move() {
  const request = CMoveRequest.createStudyMoveRequest(opts.destination, opts.study);
  request.on("response", (response) => emit({ event: "move", ...counts(response) }));
  await associate([request]);
}

function save(dataset, directory) {
  const sop = dataset.getElement("SOPInstanceUID");
  const target = path.join(directory, `${sop}.dcm`);
  dataset.toFile(target, undefined, undefined, writeOptions);
  return target;
}

// Gives the C-GET requester the SCP role for `sopClasses` in the association request it is about to
// send (the network class is not exported; the Scp class derives from it).
function withScpRole(sopClasses) {
  const network = Object.getPrototypeOf(Scp.prototype);
  const send = network.sendAssociationRequest;
  network.sendAssociationRequest = function (association) {
    for (const c of association.getPresentationContexts()) {
      const context = association.getPresentationContext(c.id);
      if (sopClasses.includes(context.getAbstractSyntaxUid())) context.setProviderRole(true);
    }
    return send.call(this, association);
  };
}

async function get() {
  fs.mkdirSync(opts.out, { recursive: true });
  const request = CGetRequest.createStudyGetRequest(opts.study);
  request.on("response", (response) => emit({ event: "get", ...counts(response) }));
  const extra = opts.extraStorageClasses || [];
  withScpRole(extra);
  await associate([request], (client) => {
    for (const sopClass of extra) {
      const context = new PresentationContext(0, sopClass);
      context.addTransferSyntaxUid(TransferSyntax.ExplicitVRLittleEndian);
      context.addTransferSyntaxUid(TransferSyntax.ImplicitVRLittleEndian);
      client.addAdditionalPresentationContext(context);
    }
    let received = 0;
    client.on("cStoreRequest", (storeRequest, callback) => {
      const response = CStoreResponse.fromRequest(storeRequest);
      try {
        const dataset = storeRequest.getDataset();
        const file = save(dataset, opts.out);
        emit({ event: "received", file, transferSyntax: dataset.getTransferSyntaxUid() });
        response.setStatus(Status.Success);
        // C-CANCEL while the gateway waits for this C-STORE's response (inside its delivery).
        if (++received === opts.cancelAfter) {
          emit({ event: "cancelSent", after: received });
          client.cancel(request);
        }
      } catch (e) {
        emit({ event: "receiveError", message: String(e && e.message) });
        response.setStatus(0xa700);
      }
      callback(response);
    });
  });
}

// Storage SCP: accepts every proposed abstract syntax with Explicit or Implicit VR Little Endian
// (what a plain workstation takes), or, with acceptAll, the first syntax the caller proposed.
function scp() {
  fs.mkdirSync(opts.out, { recursive: true });
  class StorageScp extends Scp {
    associationRequested(association) {
      for (const c of association.getPresentationContexts()) {
        const context = association.getPresentationContext(c.id);
        const proposed = context.getTransferSyntaxUids();
        const plain = [TransferSyntax.ExplicitVRLittleEndian, TransferSyntax.ImplicitVRLittleEndian];
        const chosen = opts.acceptAll ? proposed[0] : plain.find((ts) => proposed.includes(ts));
        if (chosen) context.setResult(PresentationContextResult.Accept, chosen);
        else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
      }
      this.sendAssociationAccept();
    }
    cEchoRequest(request, callback) {
      const response = CEchoResponse.fromRequest(request);
      response.setStatus(Status.Success);
      callback(response);
    }
    cStoreRequest(request, callback) {
      const response = CStoreResponse.fromRequest(request);
      try {
        const dataset = request.getDataset();
        const file = save(dataset, opts.out);
        emit({ event: "received", file, transferSyntax: dataset.getTransferSyntaxUid() });
        response.setStatus(Status.Success);
      } catch (e) {
        emit({ event: "receiveError", message: String(e && e.message) });
        response.setStatus(0xa700);
      }
      callback(response);
    }
    associationReleaseRequested() {
      this.sendAssociationReleaseResponse();
    }
  }
  const server = new Server(StorageScp);
  server.on("networkError", (e) => emit({ event: "networkError", message: String(e && e.message) }));
  server.listen(opts.port, { datasetWriteOptions: writeOptions });
  emit({ event: "listening", port: opts.port });
  process.on("SIGTERM", () => {
    server.close();
    process.exit(0);
  });
}

const commands = { store, find, move, get, scp };
if (!commands[command]) {
  console.error(`usage: node peer.js ${Object.keys(commands).join("|")} '<json>'`);
  process.exit(2);
}
Promise.resolve(commands[command]()).catch((e) => {
  emit({ event: "error", message: String(e && e.stack) });
  process.exit(1);
});
