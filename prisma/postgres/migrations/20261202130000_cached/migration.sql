-- AlterTable
ALTER TABLE "Prediction" ADD COLUMN     "cached" BOOLEAN NOT NULL DEFAULT false;
