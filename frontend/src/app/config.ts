import { createContext } from "react";

import { readConfig, type DashboardConfig } from "../lib/config";

export const ConfigContext = createContext<DashboardConfig>(readConfig());
