#!/bin/sh
echo "hello again, from version 2"
