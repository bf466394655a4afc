// The peer the USSD bench compares against: ussd-menu-builder on Express, the menu a USSD developer would
// write with it, answering the same screens as Lipa's 4-hop pay mix (main menu, pay, account, amount).
// It keeps no state of its own beyond ussd-menu-builder's in-memory session (no database, no STK push).
"use strict";
const express = require("express");
const UssdMenu = require("ussd-menu-builder");

const sessions = new Map();
function menuFor() {
  const menu = new UssdMenu();
  menu.sessionConfig({
    start: (id) => { if (!sessions.has(id)) sessions.set(id, {}); return Promise.resolve(); },
    end: (id) => { sessions.delete(id); return Promise.resolve(); },
    set: (id, key, value) => { (sessions.get(id) || {})[key] = value; return Promise.resolve(); },
    get: (id, key) => Promise.resolve((sessions.get(id) || {})[key]),
  });
  menu.startState({
    run: () => menu.con("Welcome to Lipa\n1. Pay\n2. Payment status\n3. Recent payments\n4. Language\n0. Exit"),
    next: { "1": "pay", "0": "exit" },
  });
  menu.state("pay", { run: () => menu.con("Enter the account number or bill code:"), next: { "*\\w+": "account" } });
  menu.state("account", { run: () => menu.con("Enter the amount in KES:"), next: { "*\\d+": "amount" } });
  menu.state("amount", {
    run: () => menu.con(`Pay KES ${menu.val} to account?\n1. Confirm\n2. Cancel`),
    next: { "1": "exit", "2": "exit" },
  });
  menu.state("exit", { run: () => menu.end("Thank you.") });
  return menu;
}

const app = express();
app.use(express.urlencoded({ extended: false }));
app.post("/ussd", (req, res) => {
  const menu = menuFor();
  menu.run(req.body, (reply) => { sessions.delete(req.body.sessionId); res.type("text/plain").send(reply); });
});
app.post("/bench/hello", (req, res) => res.type("text/plain").send("hello"));
const server = app.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
