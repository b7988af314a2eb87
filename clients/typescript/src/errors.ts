// The API's refusals as typed errors: every answer that is not 2xx is a GenesisError carrying the body the
// OpenAPI document describes; a 409 DUPLICATE_COMMAND is a DuplicateCommand with the id of the command in flight.
import type { components } from "./schema.js";

export type ErrorBody = components["schemas"]["Error"];
export type DuplicateCommandBody = components["schemas"]["DuplicateCommandError"];
export type ErrorCode = ErrorBody["error_code"];

export class GenesisError extends Error {
  readonly status: number;
  readonly errorCode: ErrorCode | "NETWORK_ERROR";
  readonly body: ErrorBody | DuplicateCommandBody | undefined;

  constructor(status: number, body: ErrorBody | DuplicateCommandBody | undefined, message?: string) {
    super(message ?? body?.message ?? `HTTP ${status}`);
    this.name = "GenesisError";
    this.status = status;
    this.errorCode = body?.error_code ?? "NETWORK_ERROR";
    this.body = body;
  }
}

export class DuplicateCommand extends GenesisError {
  readonly duplicateCommandId: string;

  constructor(body: DuplicateCommandBody) {
    super(409, body);
    this.name = "DuplicateCommand";
    this.duplicateCommandId = body.duplicate_command_id;
  }
}

export function toError(status: number, body: unknown): GenesisError {
  const known = typeof body === "object" && body !== null && "error_code" in body ? (body as ErrorBody) : undefined;
  if (known && known.error_code === "DUPLICATE_COMMAND" && "duplicate_command_id" in known) {
    return new DuplicateCommand(known as unknown as DuplicateCommandBody);
  }
  return new GenesisError(status, known);
}
