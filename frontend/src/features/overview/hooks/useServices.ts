import { useEffect, useState } from "react";

import { fetchServices, type Service } from "../api/services";

export type Loadable<T> = { status: "loading" } | { status: "ready"; data: T } | { status: "error"; message: string };

export function useServices(load: typeof fetchServices = fetchServices): Loadable<Service[]> {
  const [state, setState] = useState<Loadable<Service[]>>({ status: "loading" });
  useEffect(() => {
    const controller = new AbortController();
    load(controller.signal)
      .then((data) => setState({ status: "ready", data }))
      .catch((error: Error) => {
        if (!controller.signal.aborted) setState({ status: "error", message: error.message });
      });
    return () => controller.abort();
  }, [load]);
  return state;
}
