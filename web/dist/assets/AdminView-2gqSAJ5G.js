import{_ as e,o as n,b as c}from"./index-DShqX2HH.js";const o={};function r(t,s){return n(),c("h1",null,"AdminView")}const a=e(o,[["render",r]]);export{a as default};
